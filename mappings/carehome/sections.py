"""Each section of a checked care-home record as the FHIR R4 resources it
becomes (https://hl7.org/fhir/R4/resourcelist.html), with ids that are the
same on every load.

Every id is derived from the home, the resident (the home's id for them,
else their NHS number) and the item's identity: the source's own item id
when it sends one, else what the item is (a medicine's dm+d code or name,
an observation's code and time). So a later export of the same resident
rewrites the same resources, and nothing here copies ``exportedAt`` into a
resource: a resident re-exported unchanged writes nothing new.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mappings.carehome import terms
from mappings.carehome.times import LONDON, date_or_instant, london_instant
from mappings.identity import mapped_id
from mappings.ukcore import (
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    DMD,
    LOINC,
    OBSERVATION_CATEGORY,
    SNOMED,
    Unmappable,
    category,
    concept,
    local_identifier,
    nhs_identifier,
    organisation,
    reference,
)

Resource = dict[str, Any]
Record = dict[str, Any]
_FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
_XHTML = "http://www.w3.org/1999/xhtml"


@dataclass(frozen=True)
class Resident:
    """Who every resource of one record is about, and how their ids are made."""

    source: str  # the home's ODS code, upper case
    key: str  # "resident:<home's id>" or "nhs:<number>"
    patient_id: str
    home_name: str | None
    exported_day: str  # the London calendar day of exportedAt

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    @property
    def home(self) -> dict[str, Any]:
        return organisation(self.source, self.home_name)

    def id(self, kind: str, item: str) -> str:
        return mapped_id(self.source, kind, f"{self.key}|{item}")


def resident_key(record: Record) -> str:
    """The resident's part of every id: the home's own id for them is kept
    across exports even when an NHS number is found later."""
    person = record["resident"]
    if person.get("residentId"):
        return f"resident:{person['residentId']}"
    return f"nhs:{''.join(person['nhsNumber'].split())}"


def exported_day(record: Record) -> str:
    moment = datetime.fromisoformat(london_instant(record["exportedAt"]))
    return moment.astimezone(LONDON).date().isoformat()


def _words(text: str) -> str:
    """Text compared as people read it: case and spacing do not matter."""
    return " ".join(text.split()).casefold()


def _person(name: dict[str, Any]) -> str:
    return _words(" ".join([*name.get("given", []), name["family"]]))


# How an item of each list is told apart when the source sends no id.
ITEM_KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "medications": lambda m: (
        (f"dmd:{m['dmdCode']}" if m.get("dmdCode") else f"name:{_words(m['name'])}")
        + ("|as-required" if m.get("asRequired") else "")
    ),
    "allergies": lambda a: (
        f"sct:{a['snomedCode']}" if a.get("snomedCode") else f"text:{_words(a['substance'])}"
    ),
    "advanceDecisions": lambda d: f"{d['kind']}|{d['made']}",
    "alerts": lambda a: f"{a['kind']}|{_words(a['description'])}",
    "contacts": lambda c: _person(c["name"]),
    "belongings": lambda b: f"{b['item']}|{_words(b.get('description', ''))}",
}


def keyed(record: Record, section: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Each item of ``section`` with its index and its key; ``Unmappable``
    if two items have the same key, since they would be one resource."""
    seen: dict[str, int] = {}
    for index, item in enumerate(record.get(section, [])):
        key = f"id:{item['id']}" if item.get("id") else ITEM_KEYS[section](item)
        if key in seen:
            raise Unmappable(
                f"$.{section}[{index}] is the same item as $.{section}[{seen[key]}]; "
                "send each with its own id"
            )
        seen[key] = index
        yield index, item, key


def _coded(text: str, *codings: tuple[str, str, str]) -> dict[str, Any]:
    """A CodeableConcept with several codings of one meaning (LOINC and
    SNOMED CT for a vital sign), and words for people."""
    return {
        "coding": [{"system": s, "code": c, "display": d} for s, c, d in codings],
        "text": text,
    }


def _narrative(*paragraphs: str) -> dict[str, str]:
    """Words the structure has no element for, as XHTML narrative that adds
    to the structured data (status ``additional``)."""
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return {"status": "additional", "div": f'<div xmlns="{_XHTML}">{body}</div>'}


def _name(name: dict[str, Any], use: str) -> dict[str, Any]:
    human: dict[str, Any] = {"use": use, "family": name["family"]}
    if name.get("given"):
        human["given"] = list(name["given"])
    if name.get("title"):
        human["prefix"] = [name["title"]]
    return human


def _postcode(raw: str) -> str:
    compact = "".join(raw.split()).upper()
    return f"{compact[:-3]} {compact[-3:]}"


def patient(record: Record, source: str, patient_id: str, number: str | None) -> Resource:
    person = record["resident"]
    identifiers = []
    if number:
        identifiers.append(nhs_identifier(number, person.get("nhsNumberVerification")))
    if person.get("residentId"):
        identifiers.append(local_identifier(source, person["residentId"]))
    names = [_name(person["name"], "official")]
    if person.get("knownAs"):
        names.append({"use": "usual", "given": [person["knownAs"]]})
    resource: Resource = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": identifiers,
        "name": names,
        "birthDate": person["birthDate"],
    }
    if person.get("gender"):
        resource["gender"] = person["gender"]
    address = person.get("address")
    if address:
        written: dict[str, Any] = {"use": "home"}
        if address.get("lines"):
            written["line"] = list(address["lines"])
        if address.get("town"):
            written["city"] = address["town"]
        if address.get("district"):
            written["district"] = address["district"]
        if address.get("postcode"):
            written["postalCode"] = _postcode(address["postcode"])
        if len(written) > 1:
            resource["address"] = [written]
    practice = record.get("gpPractice")
    if practice:
        resource["generalPractitioner"] = [organisation(practice["odsCode"], practice.get("name"))]
    return resource


def residence(record: Record, who: Resident) -> Resource:
    """The stay as a residence EpisodeOfCare managed by the home: while it
    is active the home has its care relationship with the resident."""
    stay = record["residence"]
    start, end = stay["startDate"], stay.get("endDate")
    episode: Resource = {
        "resourceType": "EpisodeOfCare",
        "id": who.id("EpisodeOfCare", f"residence|{start}"),
        "status": "finished" if end else "active",
        "type": [
            concept(
                terms.EPISODE_TYPE,
                *terms.RESIDENCE,
                terms.CARE_TYPES[stay.get("careType", "residential")],
            )
        ],
        "patient": who.subject,
        "managingOrganization": who.home,
        "period": {"start": start, **({"end": end} if end else {})},
    }
    if stay.get("room"):
        episode["extension"] = [{"url": terms.ROOM_EXTENSION, "valueString": stay["room"]}]
    return episode


def _relationship_text(relationship: str) -> str:
    return relationship.replace("-", " ").capitalize()


def contacts(record: Record, who: Resident) -> list[Resource]:
    people: list[Resource] = []
    for _, contact, key in keyed(record, "contacts"):
        kind = contact["relationship"]
        code = terms.RELATIONSHIPS[kind]
        relationship = [
            concept(terms.ROLE_CODE, code[0], code[1], _relationship_text(kind))
            if code
            else {"text": _relationship_text(kind)}
        ]
        if contact.get("nextOfKin"):
            relationship.append(concept(terms.CONTACT_ROLE, *terms.NEXT_OF_KIN))
        if contact.get("emergencyContact"):
            relationship.append(concept(terms.CONTACT_ROLE, *terms.EMERGENCY_CONTACT))
        if contact.get("lpaHealthAndWelfare"):
            relationship.append(concept(terms.ROLE_CODE, *terms.ATTORNEY_ROLE, terms.LPA_HEALTH))
        if contact.get("lpaPropertyAndFinance"):
            relationship.append(
                concept(terms.ROLE_CODE, *terms.POWER_OF_ATTORNEY, terms.LPA_PROPERTY)
            )
        person: Resource = {
            "resourceType": "RelatedPerson",
            "id": who.id("RelatedPerson", key),
            "active": True,
            "patient": who.subject,
            "relationship": relationship,
            "name": [_name(contact["name"], "usual")],
        }
        if contact.get("phone"):
            person["telecom"] = [{"system": "phone", "value": contact["phone"]}]
        people.append(person)
    return people


def concern(record: Record, who: Resident) -> list[Resource]:
    """The current concern as a provisional, active problem: what staff are
    worried about now, not a diagnosis. One per resident, so a later export
    changes it rather than adding another."""
    worry = record.get("currentConcern")
    if not worry:
        return []
    condition: Resource = {
        "resourceType": "Condition",
        "id": who.id("Condition", "current-concern"),
        "clinicalStatus": concept(CONDITION_CLINICAL, "active", "Active"),
        "verificationStatus": concept(terms.CONDITION_VERIFICATION, "provisional", "Provisional"),
        "category": category(CONDITION_CATEGORY, "problem-list-item", "Problem List Item"),
        "code": {"text": worry["description"]},
        "subject": who.subject,
    }
    if worry.get("onset"):
        condition["onsetDateTime"] = date_or_instant(worry["onset"])
    if worry.get("recordedAt"):
        condition["recordedDate"] = london_instant(worry["recordedAt"])
    return [condition]


def about_me(record: Record, who: Resident) -> list[Resource]:
    """About Me as one Observation, each heading a component in the
    person's words, so it is read together as the standard intends."""
    about = record.get("aboutMe")
    if not about:
        return []
    components = [
        {"code": {"text": heading}, "valueString": about[field]}
        for field, heading in terms.ABOUT_ME.items()
        if about.get(field)
    ]
    if not components:
        return []
    observation: Resource = {
        "resourceType": "Observation",
        "id": who.id("Observation", "about-me"),
        "status": "final",
        "category": category(OBSERVATION_CATEGORY, "social-history", "Social History"),
        "code": {"text": "About me"},
        "subject": who.subject,
        "component": components,
    }
    if about.get("recordedOn"):
        observation["effectiveDateTime"] = about["recordedOn"]
    return [observation]


def _quantity(value: float, vital: terms.Vital) -> dict[str, Any]:
    return {"value": value, "unit": vital.unit, "system": terms.UCUM, "code": vital.ucum}


def _vital_code(vital: terms.Vital) -> dict[str, Any]:
    codings = [(LOINC, *vital.loinc)]
    if vital.also_loinc:
        codings.append((LOINC, *vital.also_loinc))
    codings.append((SNOMED, *vital.snomed))
    return _coded(vital.text, *codings)


def _observation(
    who: Resident, code: dict[str, Any], kind: str, key: str, when: str, **values: Any
) -> Resource:
    return {
        "resourceType": "Observation",
        "id": who.id("Observation", f"{key}|{when}"),
        "status": "final",
        "category": category(OBSERVATION_CATEGORY, *kind.split("|")),
        "code": code,
        "subject": who.subject,
        "effectiveDateTime": when,
        "performer": [who.home],
        **values,
    }


_VITAL_SIGNS = "vital-signs|Vital Signs"
_SURVEY = "survey|Survey"


def baseline(record: Record, who: Resident) -> list[Resource]:
    """Baseline observations: NEWS2 vital signs (vital signs profile codes
    and units), ACVPU and air-or-oxygen as NEWS2 records them, weight and
    height, and usual function and diet in words."""
    base = record.get("baseline")
    if not base:
        return []
    taken = london_instant(base["takenAt"])
    found: list[Resource] = []

    def vital(field: str, value: float, when: str = taken, **extra: Any) -> None:
        spec = terms.VITALS[field]
        found.append(
            _observation(
                who,
                _vital_code(spec),
                _VITAL_SIGNS,
                f"loinc:{spec.loinc[0]}",
                when,
                valueQuantity=_quantity(value, spec),
                **extra,
            )
        )

    if "respiratoryRate" in base:
        vital("respiratoryRate", base["respiratoryRate"])
    if "oxygenSaturation" in base:
        spo2 = base["oxygenSaturation"]
        extra: dict[str, Any] = {}
        if "scale" in spo2:
            words, target = terms.SPO2_SCALES[spo2["scale"]]
            spec = terms.VITALS["oxygenSaturation"]
            reference_range: dict[str, Any] = {"text": words}
            if target:
                reference_range = {
                    "low": _quantity(target[0], spec),
                    "high": _quantity(target[1], spec),
                    "type": concept(terms.REFERENCE_RANGE_MEANING, "treatment", "Treatment Range"),
                    **reference_range,
                }
            extra["referenceRange"] = [reference_range]
        vital("oxygenSaturation", spo2["percent"], **extra)
    if "onOxygen" in base:
        found.append(
            _observation(
                who,
                {"text": "Air or oxygen (NEWS2)"},
                _SURVEY,
                "news2:air-or-oxygen",
                taken,
                valueCodeableConcept=concept(
                    SNOMED, *(terms.ON_OXYGEN if base["onOxygen"] else terms.AIR)
                ),
            )
        )
    if "bloodPressure" in base:
        pressure = base["bloodPressure"]
        found.append(
            _observation(
                who,
                _vital_code(terms.BLOOD_PRESSURE),
                _VITAL_SIGNS,
                f"loinc:{terms.BLOOD_PRESSURE.loinc[0]}",
                taken,
                component=[
                    {"code": _vital_code(spec), "valueQuantity": _quantity(pressure[part], spec)}
                    for part, spec in (("systolic", terms.SYSTOLIC), ("diastolic", terms.DIASTOLIC))
                ],
            )
        )
    if "pulse" in base:
        vital("pulse", base["pulse"])
    if "temperature" in base:
        vital("temperature", base["temperature"])
    if "consciousness" in base:
        found.append(
            _observation(
                who,
                concept(SNOMED, *terms.ACVPU_CODE, "Level of consciousness (ACVPU)"),
                _SURVEY,
                f"sct:{terms.ACVPU_CODE[0]}",
                taken,
                valueCodeableConcept=concept(SNOMED, *terms.ACVPU[base["consciousness"]]),
            )
        )
    for field, unit in (("weight", "kg"), ("height", "cm")):
        if field in base:
            measured = base[field]
            when = london_instant(measured["takenAt"]) if "takenAt" in measured else taken
            vital(field, measured[unit], when)
    for field, (words, code) in terms.FUNCTION.items():
        if base.get(field):
            found.append(
                _observation(
                    who,
                    concept(SNOMED, *code, words) if code else {"text": words},
                    _SURVEY,
                    f"function:{field}",
                    taken,
                    valueString=base[field],
                )
            )
    if base.get("diet"):
        found.append(_diet(who, base["diet"], taken))
    return found


def _diet(who: Resident, diet: dict[str, Any], taken: str) -> Resource:
    textures = [
        {"code": {"text": heading}, "valueCodeableConcept": {"text": table[diet[field]]}}
        for field, heading, table in (
            ("foodTexture", "Food texture (IDDSI)", terms.IDDSI_FOOD),
            ("drinkTexture", "Drink texture (IDDSI)", terms.IDDSI_DRINK),
        )
        if field in diet
    ]
    extra: dict[str, Any] = {"component": textures} if textures else {}
    return _observation(
        who,
        {"text": "Usual diet"},
        "social-history|Social History",
        "function:diet",
        taken,
        valueString=diet["description"],
        **extra,
    )


def medications(record: Record, who: Resident) -> list[Resource]:
    """Each MAR line as a MedicationStatement (community: taken at the
    home), and its last dose given as a MedicationAdministration that the
    statement is derived from."""
    found: list[Resource] = []
    for _, medicine, key in keyed(record, "medications"):
        drug = concept(DMD, medicine.get("dmdCode"), None, medicine["name"])
        dosage: dict[str, Any] = {"text": medicine["dose"]}
        if medicine.get("asRequired") is not None:
            dosage["asNeededBoolean"] = medicine["asRequired"]
        if medicine.get("route"):
            dosage["route"] = concept(SNOMED, *terms.ROUTES[medicine["route"]])
        statement: Resource = {
            "resourceType": "MedicationStatement",
            "id": who.id("MedicationStatement", key),
            "status": "active",
            "category": concept(terms.STATEMENT_CATEGORY, "community", "Community"),
            "medicationCodeableConcept": drug,
            "subject": who.subject,
            "informationSource": who.home,
            "dosage": [dosage],
        }
        if "inBag" in medicine:
            statement["note"] = [
                {
                    "text": "Sent with the resident in the red bag"
                    if medicine["inBag"]
                    else "Not sent with the resident: kept at the home"
                }
            ]
        if medicine.get("lastGiven"):
            given = london_instant(medicine["lastGiven"])
            # No dosage: the MAR line's instructions are not the dose given,
            # and a dosage needs a dose or rate (mad-1).
            administration: Resource = {
                "resourceType": "MedicationAdministration",
                "id": who.id("MedicationAdministration", f"{key}|{given}"),
                "status": "completed",
                "medicationCodeableConcept": drug,
                "subject": who.subject,
                "effectiveDateTime": given,
            }
            statement["derivedFrom"] = [reference(administration)]
            found.append(administration)
        found.append(statement)
    return found


def allergies(record: Record, who: Resident) -> list[Resource]:
    """Allergies as the home records them: confirmed (staff have checked),
    active or resolved. "No known allergies" is said, not left unsaid."""
    found: list[Resource] = []
    if record.get("noKnownAllergies"):
        found.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": who.id("AllergyIntolerance", "no-known-allergy"),
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "code": concept(SNOMED, *terms.NO_KNOWN_ALLERGY),
                "patient": who.subject,
            }
        )
    for _, allergy, key in keyed(record, "allergies"):
        status = allergy["status"]
        resource: Resource = {
            "resourceType": "AllergyIntolerance",
            "id": who.id("AllergyIntolerance", key),
            "clinicalStatus": concept(ALLERGY_CLINICAL, status, status.capitalize()),
            "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
            "code": concept(SNOMED, allergy.get("snomedCode"), None, allergy["substance"]),
            "patient": who.subject,
        }
        if allergy.get("category"):
            resource["category"] = [allergy["category"]]
        if allergy.get("recordedOn"):
            resource["recordedDate"] = allergy["recordedOn"]
        if allergy.get("reaction"):
            reaction: dict[str, Any] = {"manifestation": [{"text": allergy["reaction"]}]}
            if allergy.get("severity"):
                reaction["severity"] = allergy["severity"]
            resource["reaction"] = [reaction]
        found.append(resource)
    return found


def not_for_cpr(decision: dict[str, Any]) -> bool:
    """A DNACPR, or a ReSPECT form that recommends CPR is not attempted."""
    return decision["kind"] == "DNACPR" or (
        decision["kind"] == "ReSPECT" and decision.get("cprRecommendation") == "do-not-attempt"
    )


def _provision(decision: dict[str, Any], attorneys: list[Resource]) -> dict[str, Any] | None:
    kind = decision["kind"]
    if not_for_cpr(decision):
        return {"type": "deny", "code": [concept(SNOMED, *terms.CPR)]}
    if kind == "ReSPECT" and decision.get("cprRecommendation") == "attempt":
        return {"type": "permit", "code": [concept(SNOMED, *terms.CPR)]}
    if kind == "ADRT" and decision.get("decision"):
        return {"type": "deny", "code": [{"text": decision["decision"]}]}
    if kind == "LPA-health" and attorneys:
        role = concept(terms.ROLE_CODE, *terms.ATTORNEY_ROLE)
        return {
            "type": "permit",
            "actor": [{"role": role, "reference": reference(person)} for person in attorneys],
        }
    return None


def decisions(record: Record, who: Resident, people: list[Resource]) -> list[Resource]:
    """Advance decisions as Consents of scope ``adr``; and, when any says
    not to attempt CPR (a DNACPR, or a ReSPECT form that recommends so), one
    Flag "not for attempted CPR" pointing at them, since that is what a crew
    must see first. The Flag is active while one of them is; it stays,
    inactive, when they are all withdrawn, so a later export takes it down.
    ``people`` are the contacts' RelatedPersons in the order of
    ``contacts``, so an LPA names its attorneys."""
    attorneys = [
        person
        for person, contact in zip(people, record.get("contacts", []), strict=True)
        if contact.get("lpaHealthAndWelfare")
    ]
    consents: list[Resource] = []
    cpr: list[tuple[Resource, dict[str, Any]]] = []
    for _, decision, key in keyed(record, "advanceDecisions"):
        spec = terms.DECISIONS[decision["kind"]]
        consent: Resource = {
            "resourceType": "Consent",
            "id": who.id("Consent", key),
            "status": terms.DECISION_STATUS[decision["status"]],
            "scope": concept(terms.CONSENT_SCOPE, "adr", "Advanced Care Directive"),
            "category": [concept(terms.CONSENT_CATEGORY, *spec.category, spec.text)],
            "patient": who.subject,
            "dateTime": decision["made"],
            "policyRule": {"text": spec.rule},
        }
        words = [spec.text]
        if decision.get("decision"):
            words.append(decision["decision"])
        if decision.get("documentLocation"):
            words.append(f"The signed original: {decision['documentLocation']}")
            consent["sourceAttachment"] = {"title": decision["documentLocation"]}
        consent["text"] = _narrative(*words)
        if spec.by_the_person:
            consent["performer"] = [who.subject]
        if decision.get("reviewed"):
            consent["verification"] = [{"verified": True, "verificationDate": decision["reviewed"]}]
        provision = _provision(decision, attorneys)
        if provision:
            consent["provision"] = provision
        consents.append(consent)
        if not_for_cpr(decision):
            cpr.append((consent, decision))
    if not cpr:
        return consents
    active = [(consent, decision) for consent, decision in cpr if decision["status"] == "active"]
    flag: Resource = {
        "resourceType": "Flag",
        "id": who.id("Flag", "not-for-cpr"),
        "extension": [
            {"url": _FLAG_DETAIL, "valueReference": reference(consent)}
            for consent, _ in (active or cpr)
        ],
        "status": "active" if active else "inactive",
        "category": [concept(terms.FLAG_CATEGORY, "advance-directive", "Advance Directive")],
        "code": concept(SNOMED, *terms.NOT_FOR_CPR),
        "subject": who.subject,
        "author": who.home,
    }
    if active:
        flag["period"] = {"start": min(decision["made"] for _, decision in active)}
    return [*consents, flag]


def alerts(record: Record, who: Resident) -> list[Resource]:
    """Alerts and risks as Flags. One whose end date has passed by the day
    of the export is inactive; until then (a DoLS authorisation until its
    expiry) it is active."""
    flags: list[Resource] = []
    for _, alert, key in keyed(record, "alerts"):
        spec = terms.ALERTS[alert["kind"]]
        words = f"{spec.text}: {alert['description']}"
        if alert.get("snomedCode"):
            code = concept(SNOMED, alert["snomedCode"], None, words)
        elif spec.snomed:
            code = concept(SNOMED, *spec.snomed, words)
        else:
            code = {"text": words}
        end = alert.get("end")
        flag: Resource = {
            "resourceType": "Flag",
            "id": who.id("Flag", key),
            "status": "inactive" if end and end < who.exported_day else "active",
            "code": code,
            "subject": who.subject,
            "author": who.home,
        }
        if spec.category:
            flag["category"] = [concept(terms.FLAG_CATEGORY, *spec.category)]
        period = {k: alert[f] for k, f in (("start", "start"), ("end", "end")) if alert.get(f)}
        if period:
            flag["period"] = period
        flags.append(flag)
    return flags


def care_plan(record: Record, who: Resident) -> list[Resource]:
    """The care plan summary. Goals are notes: the Goal resource is not one
    the gateway serves."""
    plan = record.get("carePlan")
    if not plan:
        return []
    resource: Resource = {
        "resourceType": "CarePlan",
        "id": who.id("CarePlan", "care-plan"),
        "status": "active",
        "intent": "plan",
        "title": "Care plan",
        "description": plan["summary"],
        "subject": who.subject,
        "author": who.home,
    }
    notes = [{"text": f"Goal: {goal}"} for goal in plan.get("goals", [])]
    if plan.get("lastReviewed"):
        notes.append({"time": plan["lastReviewed"], "text": "Care plan last reviewed"})
    if notes:
        resource["note"] = notes
    return [resource]


def belongings(record: Record, who: Resident) -> list[Resource]:
    """Aids as Devices (the dentures, glasses and hearing aids that go
    missing), and one List of every belonging, each marked sent with the
    resident or kept at the home. A belonging that is not an aid is named in
    the List only: an entry may be a reference with a display and no target."""
    devices: list[Resource] = []
    entries: list[dict[str, Any]] = []
    for _, item, key in keyed(record, "belongings"):
        kind, description = item["item"], item.get("description")
        if kind in terms.AIDS:
            words, code = terms.AIDS[kind]
            device: Resource = {
                "resourceType": "Device",
                "id": who.id("Device", key),
                "status": "active",
                "type": concept(SNOMED, *code, words) if code else {"text": words},
                "patient": who.subject,
            }
            if description:
                device["deviceName"] = [{"name": description, "type": "user-friendly-name"}]
            devices.append(device)
            target: dict[str, Any] = reference(device)
        else:
            words, target = terms.BELONGINGS[kind], {}
        target["display"] = f"{words}: {description}" if description else words
        entries.append(
            {
                "flag": {
                    "text": "Sent with the resident"
                    if item["sentWithResident"]
                    else "Kept at the home"
                },
                "item": target,
            }
        )
    if not entries:
        return []
    listing: Resource = {
        "resourceType": "List",
        "id": who.id("List", "belongings"),
        "status": "current",
        "mode": "snapshot",
        "title": "Belongings",
        "code": {"text": "Belongings"},
        "subject": who.subject,
        "entry": entries,
    }
    return [*devices, listing]
