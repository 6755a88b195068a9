"""ADT messages (HL7 UK v2.4, ITK) into UK Core shaped FHIR R4 resources.

PID and PD1 give the Patient (one per NHS number across every source), PV1
and PV2 the Encounter (its status follows the event), NK1 RelatedPersons, AL1
AllergyIntolerances, DG1 Conditions and PR1 Procedures. The hospital is the
sending facility (MSH-4, an ODS code). HL7 times are UK local time: they are
read as Europe/London and written with their offset.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mappings.codelists import code_list
from mappings.hl7v2.parser import Message, Segment
from mappings.identity import InvalidNhsNumber, id_basis, mapped_id, nhs_number
from mappings.ukcore import (
    ETHNIC_URL,
    ICD10,
    ODS,
    SNOMED,
    UKCORE,
    Mapped,
    Unmappable,
    nhs_identifier,
    typed_id,
    utc_moment,
)

LONDON = ZoneInfo("Europe/London")
# An HL7 TS's digits (YYYY[MM[DD[HH[MM[SS]]]]]) and its zone (+/-HHMM).
_TIMESTAMP = re.compile(r"[0-9]{4}(?:[0-9]{2}){0,5}")
_ZONE = re.compile(r"[+-](?:0[0-9]|1[0-4])[0-5][0-9]")
_POSITIVE_INT_MAX = 2**31 - 1
# HL7 NM (a number) and the integers a float holds exactly.
_NM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXACT_INTEGER = 2**53
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Events that carry a visit (PV1); A28 and A31 are about the person only.
VISIT_EVENTS = {"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13"}
MERGE_EVENTS = {"A34", "A40"}
PERSON_EVENTS = VISIT_EVENTS | MERGE_EVENTS | {"A28", "A31"}
_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "in-progress",
    "A05": "planned",
    "A08": None,  # an update: the status the visit's dates say
    "A11": "cancelled",
    "A13": "in-progress",  # a discharge cancelled
}
# PV1-2 (HL7 v2 table 0004) as the v3 ActCode class R4's Encounter.class is
# bound to. A class with none (C, N, U, or the site's own) keeps its table
# 0004 coding: the binding is extensible.
_CLASS = {
    "I": ("IMP", "inpatient encounter"),
    "E": ("EMER", "emergency"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("AMB", "ambulatory"),
}
_GENDER = {"M": "male", "F": "female", "1": "male", "2": "female", "O": "other"}

# Coding systems as a CE's third component names them (PR1-3, PV2-3), folded
# (upper case; spaces, hyphens and underscores dropped): the name a reader is
# shown, and the FHIR system its codes are coded in. ``None``: a system we
# know but whose FHIR URI no UK Core, HL7 UK or NHS England publication we
# could find confirms (OPCS-4 is not among UK Core's terminology
# NamingSystems, simplifier.net/guide/UKNamingSystems); its codes are kept in
# the words, never claimed as a coding. A system not listed is treated so too.
_CODING_SYSTEMS: dict[str, tuple[str, str | None]] = {
    "SCT": ("SNOMED CT", SNOMED),  # HL7 table 0396
    "SNOMEDCT": ("SNOMED CT", SNOMED),
    "I10": ("ICD-10", ICD10),  # HL7 table 0396
    "ICD10": ("ICD-10", ICD10),
    "OPCS4": ("OPCS-4", None),
    "OPCS": ("OPCS-4", None),
}
# Practitioner identifiers by the XCN's assigning authority: the UK Core
# identifier NamingSystems (simplifier.net/guide/UKNamingSystems). Any other
# authority is the hospital's own staff code.
_PRACTITIONER_SYSTEMS = {
    "GMC": f"{UKCORE}/Id/gmc-number",
    "NMC": f"{UKCORE}/Id/nmc-number",
    "HCPC": f"{UKCORE}/Id/hcpc-number",
    "GDC": f"{UKCORE}/Id/gdc-number",
}
STAFF_ID = "urn:london-care-gateway:staff"
# UK Core's homes for the NHS Data Dictionary's admission method (on
# Encounter.hospitalization) and discharge method (on the Encounter); the
# source of admission and the discharge destination are R4's own
# hospitalization.admitSource and dischargeDisposition, which UK Core binds
# to those lists.
ADMISSION_METHOD_URL = f"{UKCORE}/StructureDefinition/Extension-UKCore-AdmissionMethod"
DISCHARGE_METHOD_URL = f"{UKCORE}/StructureDefinition/Extension-UKCore-DischargeMethod"
# PV2-8 and PV2-9: R4 Encounter has no planned dates. R5 added
# plannedStartDate and plannedEndDate ("or discharge date"); HL7's
# cross-version extensions carry them in R4 (hl7.fhir.uv.xver-r5.r4), and the
# HL7 v2-to-FHIR map sends PV2-8 and PV2-9 there. UK Core defines none.
PLANNED_START_URL = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedStartDate"
)
PLANNED_END_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"
# PV2-22 Y (table 0136): keep the visit from users without authority for the
# patient. The consent engine withholds v3-Confidentiality R from everyone but
# the record's author, whatever the purpose (consent/README.md).
RESTRICTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "code": "R",
    "display": "restricted",
}


def instant(raw: str) -> str | None:
    """An HL7 TS (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as a FHIR date or
    dateTime; without a zone it is London time, written with its offset."""
    raw = raw.strip()
    if not raw:
        return None
    digits, zone = raw, ""
    for sign in ("+", "-"):
        if sign in raw[8:]:
            at = raw.index(sign, 8)
            digits, zone = raw[:at], raw[at:]
    digits = digits.split(".")[0]
    if not _TIMESTAMP.fullmatch(digits) or (zone and not _ZONE.fullmatch(zone)):
        raise Unmappable(f"{raw!r} is not an HL7 timestamp")
    try:  # each part in its range: month 13 or minute 99 is no moment
        moment = datetime.strptime(digits + "0101000000"[len(digits) - 4 :], "%Y%m%d%H%M%S")
    except ValueError:
        raise Unmappable(f"{raw!r} is not an HL7 timestamp") from None
    if len(digits) <= 8:
        return "-".join(p for p in (digits[:4], digits[4:6], digits[6:8]) if p)
    if zone:
        offset = f"{zone[:3]}:{zone[3:5]}"
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset
    return moment.replace(tzinfo=LONDON).isoformat()


def _code(segment: Segment, number: int) -> str:
    """The code of a coded field (its first component): "" when it is
    empty or HL7's null, ``""``, which deletes the value."""
    code = segment.value(number).strip()
    return "" if code == '""' else code


def _date(raw: str) -> str | None:
    found = instant(raw)
    return found[:10] if found else None


def _patient_key(segment: Segment, number: int, source: str) -> str | None:
    """The Patient id that the identifiers in ``segment``-``number`` (a CX
    list, as PID-3 or MRG-1) lead to: by NHS number, else by local id."""
    local = None
    for index, _ in enumerate(segment.repetitions(number)):
        value = segment.value(number, 1, index)
        authority, kind = (
            segment.value(number, 4, index).upper(),
            segment.value(number, 5, index).upper(),
        )
        if not value:
            continue
        if authority == "NHS" or kind == "NH":
            try:
                return mapped_id("NHS", "Patient", nhs_number(value))
            except InvalidNhsNumber as exc:
                raise Unmappable(f"{segment.name}-{number}: {exc}") from None
        local = local or value
    return mapped_id(source, "Patient", local) if local else None


def _patient(message: Message, source: str) -> tuple[dict[str, Any], str]:
    """PID as the Patient, and its basis: what the keys of the person's
    records embed (``mappings.identity``)."""
    pid = message.segment("PID")
    if pid is None:
        raise Unmappable("no PID segment")
    identifiers: list[dict[str, Any]] = []
    number = None
    for index, _ in enumerate(pid.repetitions(3)):
        value = pid.value(3, 1, index)
        authority, kind = pid.value(3, 4, index).upper(), pid.value(3, 5, index).upper()
        if not value:
            continue
        if authority == "NHS" or kind == "NH":
            try:
                number = nhs_number(value)
            except InvalidNhsNumber as exc:
                raise Unmappable(f"PID-3: {exc}") from None
        else:
            identifiers.append(
                {"system": f"urn:london-care-gateway:local-id:{source}", "value": value}
            )
    if number is not None:
        trace = pid.value(32).upper().removeprefix("NSTS")
        verified = trace if trace in {f"0{n}" for n in range(1, 9)} else None
        identifiers.insert(0, nhs_identifier(number, verified))
    if not identifiers:
        raise Unmappable("PID-3 has neither an NHS number nor a local identifier")
    # One Patient per NHS number, whatever the source; else per local id.
    person = ("NHS" if number else source, "Patient", number or identifiers[0]["value"])
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": mapped_id(*person),
        "identifier": identifiers,
    }
    family, given = pid.value(5, 1), [g for g in (pid.value(5, 2), pid.value(5, 3)) if g]
    if family or given:
        name: dict[str, Any] = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        if pid.value(5, 5):
            name["prefix"] = [pid.value(5, 5)]
        patient["name"] = [name]
    if (birth := _date(pid.value(7))) is not None:
        patient["birthDate"] = birth
    sex = pid.value(8).upper()
    if sex:
        patient["gender"] = _GENDER.get(sex, "unknown")
    address = [pid.value(11, n) for n in (1, 2, 3, 4)]
    if any(address) or pid.value(11, 5):
        patient["address"] = [
            {
                "line": [line for line in address[:2] if line],
                **({"city": address[2]} if address[2] else {}),
                **({"district": address[3]} if address[3] else {}),
                **({"postalCode": pid.value(11, 5)} if pid.value(11, 5) else {}),
            }
        ]
    if (died := pid.value(29)) and (when := instant(died)):
        patient["deceasedDateTime"] = when
    if ethnic := _code(pid, 22):
        patient["extension"] = [
            {
                "url": ETHNIC_URL,
                "valueCodeableConcept": code_list("ethnic-category").concept(
                    ethnic, pid.value(22, 2)
                ),
            }
        ]
    pd1 = message.segment("PD1")
    practice = (pd1.value(3, 3) or pd1.value(3, 1)) if pd1 else ""
    if practice and practice.replace(" ", "").isalnum() and len(practice) <= 10:
        patient["generalPractitioner"] = [
            {"identifier": {"system": ODS, "value": practice.upper()}}
        ]
    return patient, id_basis(*person)


def _encounter(
    message: Message, pv1: Segment, source: str, patient_id: str
) -> tuple[dict[str, Any], str]:
    """PV1 as the visit's Encounter, and its basis: what the keys of the
    visit's records embed."""
    visit = pv1.value(19) or message.control_id
    event = message.event
    start, end = instant(pv1.value(44)), instant(pv1.value(45))
    status = _STATUS.get(event) or ("finished" if end else "in-progress")
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": mapped_id(source, "Encounter", visit),
        "identifier": [{"system": f"urn:london-care-gateway:visit:{source}", "value": visit}],
        "status": status,
        "class": _class(_code(pv1, 2)),
        "subject": {"reference": f"Patient/{patient_id}"},
        "serviceProvider": {"identifier": {"system": ODS, "value": source}},
    }
    # An end is only the visit's end once it is finished; a period with
    # neither would be an empty object, which FHIR JSON forbids.
    period = {
        **({"start": start} if start else {}),
        **({"end": end} if end and status == "finished" else {}),
    }
    if period:
        encounter["period"] = period
    ward = " ".join(p for p in (pv1.value(3, 1), pv1.value(3, 2), pv1.value(3, 3)) if p)
    if ward:
        encounter["location"] = [{"location": {"display": ward}}]
    extensions, hospitalisation = _admission_and_discharge(pv1)
    if hospitalisation:
        encounter["hospitalization"] = hospitalisation
    pv2 = message.segment("PV2")
    if pv2 is not None:
        if (reason := _coded(pv2, 3)) is not None:
            encounter["reasonCode"] = [reason]
        extensions += [
            {"url": url, "valueDateTime": when}
            for url, number in ((PLANNED_START_URL, 8), (PLANNED_END_URL, 9))
            if (when := instant(pv2.value(number))) is not None
        ]
    if extensions:
        encounter["extension"] = extensions
    return encounter, id_basis(source, "Encounter", visit)


def _class(raw: str) -> dict[str, str]:
    """PV1-2 as Encounter.class: v3 ActCode where the patient class has a
    match, else its HL7 v2 table 0004 coding (display only when the table
    lists the code). R4 requires a class: none sent is table 0004's U,
    unknown, rather than a class the message does not state."""
    kind = raw.upper()
    if kind in _CLASS:
        code, display = _CLASS[kind]
        return {"system": ACT_CODE, "code": code, "display": display}
    return code_list("patient-class").coding(kind or "U")


def _admission_and_discharge(pv1: Segment) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Encounter's extensions and its hospitalization from the NHS Data
    Dictionary codes of PV1-4 (admission method), PV1-14 (source of
    admission) and PV1-36, coded with their displays.

    PV1-36 carries the discharge destination in some feeds (UK Core binds
    dischargeDisposition to it) and the discharge method in others (NHS
    England's ADT specification). The two lists share no code (methods are
    one digit, destinations two), so the code says which it is: a discharge
    method goes to UK Core's DischargeMethod extension; anything else is the
    discharge destination, shown as not in that list when it is not."""
    extensions: list[dict[str, Any]] = []
    hospitalisation: dict[str, Any] = {}
    if method := _code(pv1, 4):
        hospitalisation["extension"] = [
            {
                "url": ADMISSION_METHOD_URL,
                "valueCodeableConcept": code_list("admission-method").concept(method),
            }
        ]
    if admitted_from := _code(pv1, 14):
        hospitalisation["admitSource"] = code_list("source-of-admission").concept(admitted_from)
    if discharge := _code(pv1, 36):
        destinations, methods = code_list("discharge-destination"), code_list("discharge-method")
        if destinations.display(discharge) is None and methods.display(discharge) is not None:
            extensions.append(
                {"url": DISCHARGE_METHOD_URL, "valueCodeableConcept": methods.concept(discharge)}
            )
        else:
            hospitalisation["dischargeDisposition"] = destinations.concept(discharge)
    return extensions, hospitalisation


# DG1-6, the diagnosis type (HL7 table 0052), as R4's diagnosis roles; a
# working diagnosis has none, so it says so in words.
_DIAGNOSIS_ROLE = {"A": ("AD", "Admission diagnosis"), "F": ("DD", "Discharge diagnosis")}
DIAGNOSIS_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/diagnosis-role"


def _diagnosis(dg1: Segment, condition_id: str) -> dict[str, Any]:
    """One of the visit's diagnoses: the Condition, its role (DG1-6) and its
    rank (DG1-15, the diagnosis priority: 1 is the primary one)."""
    diagnosis: dict[str, Any] = {"condition": {"reference": f"Condition/{condition_id}"}}
    kind = dg1.value(6).upper()
    if kind in _DIAGNOSIS_ROLE:
        code, display = _DIAGNOSIS_ROLE[kind]
        diagnosis["use"] = {
            "coding": [{"system": DIAGNOSIS_ROLE_SYSTEM, "code": code, "display": display}]
        }
    elif kind == "W":
        diagnosis["use"] = {"text": "Working diagnosis"}
    priority = dg1.value(15)
    # ASCII digits only ("¹" is a digit to str.isdigit, not to int), and
    # within a positiveInt.
    if priority.isascii() and priority.isdigit() and 0 < int(priority) <= _POSITIVE_INT_MAX:
        diagnosis["rank"] = int(priority)
    return diagnosis


def _fold(name: str) -> str:
    return "".join(c for c in name.upper() if c not in " -_")


def _coded(
    segment: Segment, number: int, words: str = "", *, unnamed_coded: bool = False
) -> dict[str, Any] | None:
    """A CE field (code^text^coding system) as a CodeableConcept: coded when
    its system is one whose FHIR URI we know; otherwise the code stays in the
    words with its system's name ("Appendicectomy (OPCS-4 H01.9)").
    ``words`` stand in for an empty text (PR1-4).

    With ``unnamed_coded``, a code whose system the field leaves empty is a
    coding without a system (which claims none): the restricted code lists
    then read it as each of their systems would (``consent.labels``), so a
    diagnosis sent as "F32.9^Depressive episode^" is labelled, not shared.
    Not for procedures: an OPCS-4 code read as ICD-10 would label a
    tonsillectomy (F34.1) as mental health."""
    code, named = segment.value(number, 1), segment.value(number, 3)
    text = segment.value(number, 2) or words
    if not code and not text:
        return None
    label, system = _CODING_SYSTEMS.get(_fold(named), (named, None))
    if code and system:
        return {"coding": [{"system": system, "code": code}], **({"text": text} if text else {})}
    if code and not named and unnamed_coded:
        return {"coding": [{"code": code}], **({"text": text} if text else {})}
    if code:
        tag = f"{label} {code}" if label else code
        text = f"{text} ({tag})" if text else tag
    return {"text": text}


def _performers(segment: Segment, number: int, source: str, function: str) -> list[dict[str, Any]]:
    """Each XCN of ``segment``-``number`` as a performer, by name and
    identifier: the feed sends no more of a practitioner than that, and the
    mapper makes no Practitioner resources."""
    performers = []
    for index, _ in enumerate(segment.repetitions(number)):
        value = segment.value(number, 1, index)
        name = " ".join(p for p in (segment.value(number, n, index) for n in (6, 3, 2)) if p)
        if not value and not name:
            continue
        actor: dict[str, Any] = {"type": "Practitioner"}
        if value:
            authority = segment.value(number, 9, index).split(segment.seps.subcomponent)[0]
            system = _PRACTITIONER_SYSTEMS.get(authority.upper(), f"{STAFF_ID}:{source.upper()}")
            actor["identifier"] = {"system": system, "value": value}
        if name:
            actor["display"] = name
        performers.append(
            {**({"function": {"text": function}} if function else {}), "actor": actor}
        )
    return performers


def _procedures(
    message: Message, encounter: dict[str, Any], visit: str, source: str, patient_id: str
) -> list[dict[str, Any]]:
    """PR1 as Procedures of the visit, completed: PR1 records what was done.
    Keyed by visit, code and time rather than PR1-1, which only numbers the
    segments of one message: a later message that leaves a procedure out or
    reorders them must not move one onto another's id. ``visit``: the
    Encounter's basis."""
    procedures: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for pr1 in message.all("PR1"):
        code = _coded(pr1, 3, pr1.value(4))
        if code is None:
            continue
        performed = instant(pr1.value(5))
        key = "|".join(
            (
                visit,
                _fold(pr1.value(3, 3)),
                pr1.value(3, 1) or code["text"],
                performed or "",
            )
        )
        # The same code at the same time twice (both sides, say): the second
        # is another procedure, and stays the second when the message is sent again.
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key = f"{key}|{seen[key]}"
        procedure: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": mapped_id(source, "Procedure", key),
            "status": "completed",
            "code": code,
            "subject": {"reference": f"Patient/{patient_id}"},
            "encounter": {"reference": f"Encounter/{encounter['id']}"},
        }
        if performed is not None:
            procedure["performedDateTime"] = performed
        performers: list[dict[str, Any]] = []
        for performer in _performers(pr1, 11, source, "surgeon") + _performers(pr1, 12, source, ""):
            # One person named as surgeon (PR1-11) and practitioner (PR1-12) is one performer.
            if all(performer["actor"] != other["actor"] for other in performers):
                performers.append(performer)
        if performers:
            procedure["performer"] = performers
        procedures.append(procedure)
    return procedures


def _protect(message: Message, encounter: dict[str, Any], mapped: Mapped) -> None:
    """PV2-22 Y: the visit and what this message records in it (diagnoses,
    procedures, results) are labelled restricted. The person's own record
    (Patient, allergies, contacts) is not the visit's and is left as it is.

    Any other value (N, or "" to clear it) states that the visit is not
    protected. Left empty, as an update that does not touch it may leave
    it (in HL7 v2 a field not sent is no change; only "" deletes), it says
    nothing: the visit's resources keep the labels the visit has on file."""
    pv2 = message.segment("PV2")
    stated = pv2.value(22).upper() if pv2 is not None else ""
    in_visit = {"reference": f"Encounter/{encounter['id']}"}
    visit = f"Encounter/{encounter['id']}"
    for resource in mapped.resources:
        if resource is encounter or resource.get("encounter") == in_visit:
            if stated == "Y":
                resource["meta"] = {"security": [dict(RESTRICTED)]}
            elif not stated:
                mapped.labels_from[typed_id(resource)] = visit


_OBSERVATION_SYSTEMS = {"SCT": "http://snomed.info/sct", "LN": "http://loinc.org"}
_OBSERVATION_STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "X": "cancelled"}


def _observation(
    message: Message,
    obx: Segment,
    source: str,
    patient_id: str,
    person: str,
    so_far: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """OBX as an Observation: numbers with their unit, coded values, text.
    Keyed by person (``person``, their basis), code and time, so the same
    result sent again in a later message is the same Observation."""
    code, text, system = obx.value(3, 1), obx.value(3, 2), obx.value(3, 3).upper()
    raw = obx.value(5)
    if not (code or text) or not raw:
        return None
    evn = message.segment("EVN")
    recorded = evn.value(2) if evn is not None else message.segments[0].value(7)
    when = instant(obx.value(14)) or instant(recorded)
    concept: dict[str, Any] = {"text": text or code}
    if code and system in _OBSERVATION_SYSTEMS:
        concept["coding"] = [{"system": _OBSERVATION_SYSTEMS[system], "code": code}]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": mapped_id(source, "Observation", f"{person}|{system}|{code or text}|{when}"),
        "status": _OBSERVATION_STATUS.get(obx.value(11).upper(), "final"),
        "code": concept,
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if when:
        observation["effectiveDateTime"] = when
    encounter = next((r for r in so_far if r["resourceType"] == "Encounter"), None)
    if encounter is not None:
        observation["encounter"] = {"reference": f"Encounter/{encounter['id']}"}
    kind = obx.value(2).upper()
    if kind in ("NM", "SN"):
        # HL7's NM: an optional sign, ASCII digits, an optional decimal
        # point; not what float() also takes (nan, inf, 1e400, 1_000, "١٢").
        if not _NM.fullmatch(raw.strip()):
            raise Unmappable(f"OBX-5 {raw!r} is not a number though OBX-2 says {kind}")
        number = float(raw)
        whole = number.is_integer() and abs(number) < _EXACT_INTEGER
        quantity: dict[str, Any] = {"value": int(number) if whole else number}
        if obx.value(6):
            quantity["unit"] = obx.value(6)
        observation["valueQuantity"] = quantity
    elif kind in ("CE", "CWE", "CNE"):
        observation["valueCodeableConcept"] = {"text": obx.value(5, 2) or raw}
    else:
        observation["valueString"] = raw
    return observation


def map_adt(message: Message, source: str) -> Mapped:
    """The resources of one ADT message from ``source`` (the sending
    hospital's ODS code, checked against MSH-4 when that is given)."""
    event = message.event
    if event not in PERSON_EVENTS:
        raise Unmappable(f"event {event or '(none)'} is not one this gateway maps")
    sender = message.segments[0].value(4).upper()
    if sender and sender != source.upper():
        raise Unmappable(f"MSH-4 names {sender}, but the file is loaded as {source}")
    patient, person = _patient(message, source)
    sent = instant(message.segments[0].value(7))  # MSH-7: when the message was made
    mapped = Mapped(patient["id"], [patient], as_at=utc_moment(sent) if sent else None)
    if event in MERGE_EVENTS:
        mrg = message.segment("MRG")
        retired = _patient_key(mrg, 1, source) if mrg is not None else None
        if retired is None:
            raise Unmappable(f"{event} needs MRG-1, the identifiers of the record merged away")
        if retired == patient["id"]:
            raise Unmappable("MRG-1 names the same person as PID-3: nothing to merge")
        mapped.merged_from = retired
        return mapped
    subject = {"reference": f"Patient/{patient['id']}"}
    pv1 = message.segment("PV1")
    if event in VISIT_EVENTS and pv1 is not None:
        encounter, visit_basis = _encounter(message, pv1, source, patient["id"])
        mapped.resources.append(encounter)
        if event == "A11":
            mapped.cancels = encounter["id"]
        for index, dg1 in enumerate(message.all("DG1"), start=1):
            # DG1-4, the description, stands in for DG1-3's text (older feeds).
            concept = _coded(dg1, 3, words=dg1.value(4), unnamed_coded=True)
            if concept is None:
                continue
            condition: dict[str, Any] = {
                "resourceType": "Condition",
                "id": mapped_id(source, "Condition", f"{visit_basis}|{dg1.value(1) or index}"),
                "subject": subject,
                "encounter": {"reference": f"Encounter/{encounter['id']}"},
                "code": concept,
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                "code": "encounter-diagnosis",
                            }
                        ]
                    }
                ],
            }
            if (recorded := instant(dg1.value(5))) is not None:
                condition["recordedDate"] = recorded
            mapped.resources.append(condition)
            encounter.setdefault("diagnosis", []).append(_diagnosis(dg1, condition["id"]))
        # Each message states the diagnoses it carries; those earlier ones
        # stated stay on the visit, as their Conditions do.
        mapped.gathered[f"Encounter/{encounter['id']}"] = ("diagnosis", "condition")
        mapped.resources += _procedures(message, encounter, visit_basis, source, patient["id"])
    for obx in message.all("OBX"):
        observation = _observation(message, obx, source, patient["id"], person, mapped.resources)
        if observation is not None:
            mapped.resources.append(observation)
    visit = next((r for r in mapped.resources if r["resourceType"] == "Encounter"), None)
    if visit is not None:
        _protect(message, visit, mapped)
    for al1 in message.all("AL1"):
        text = al1.value(3, 2) or al1.value(3, 1)
        if not text:
            continue
        allergy: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "id": mapped_id(source, "AllergyIntolerance", f"{person}|{al1.value(3, 1) or text}"),
            "patient": subject,
            "code": {"text": text},
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "unconfirmed",
                    }
                ]
            },
        }
        if al1.value(5):
            allergy["reaction"] = [{"manifestation": [{"text": al1.value(5)}]}]
        mapped.resources.append(allergy)
    for index, nk1 in enumerate(message.all("NK1"), start=1):
        family, given = nk1.value(2, 1), nk1.value(2, 2)
        if not family and not given:
            continue
        related: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "id": mapped_id(source, "RelatedPerson", f"{person}|{nk1.value(1) or index}"),
            "patient": subject,
            "name": [
                {**({"family": family} if family else {}), **({"given": [given]} if given else {})}
            ],
        }
        if nk1.value(3, 2) or nk1.value(3, 1):
            related["relationship"] = [{"text": nk1.value(3, 2) or nk1.value(3, 1)}]
        if nk1.value(5):
            related["telecom"] = [{"system": "phone", "value": nk1.value(5)}]
        mapped.resources.append(related)
    return mapped
