"""One CLD row (one event in a person's social care) into UK Core shaped
FHIR R4 resources, as Interweave's social care profiles shape them.

The person becomes the Patient; their primary support reason a Condition;
their accommodation and whether they have an unpaid carer social history
Observations; a carer's link to the people they care for a RelatedPerson
on each. The event itself: a Request is a ServiceRequest, an Assessment or
a Review a Task, and a Service an EpisodeOfCare managed by the council with
its provider in a CareTeam. An open Service is an active EpisodeOfCare,
which is what gives the council its care relationship under the consent
rules. Costs and the delivery mechanism stay with the council.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mappings.cld.items import (
    ACCOMMODATION_STATUSES,
    CLIENT_TYPES,
    ETHNICITIES,
    EVENT_TYPES,
    GENDERS,
    HAS_UNPAID_CARER,
    PRIMARY_SUPPORT_REASONS,
    ROUTES_OF_ACCESS,
    SERVICE_TYPE_NAMES,
    SERVICE_TYPE_SYSTEM,
    SERVICE_TYPES,
    SUPPORT_REASON_SYSTEM,
    SUPPORT_REASONS,
    DefinedList,
)
from mappings.codelists import code_list
from mappings.identity import mapped_id
from mappings.ukcore import (
    CONDITION_CLINICAL,
    ETHNIC_URL,
    OBSERVATION_CATEGORY,
    Mapped,
    Unmappable,
    checked_nhs_number,
    concept,
    dated_by,
    local_identifier,
    nhs_identifier,
    organisation,
    patient_basis,
    patient_id,
    reference,
)

# The CLD items themselves, as codes for what an Observation or Task is.
CLD_ITEM_SYSTEM = "urn:london-care-gateway:cld-item"
CLD_VALUE_SYSTEM = "urn:london-care-gateway:cld-value"
CQC_LOCATION = "urn:london-care-gateway:cqc-location-id"
SUPPORT_REASON_CATEGORY_SYSTEM = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareSupportReasonCategory"
)
_ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")
_UK_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def row_key(values: dict[str, str]) -> str:
    """The source's own id for this version of a row: its event reference
    (else person, type and start) and a digest of what it says, so a row
    sent again changes nothing and a changed row updates its resources."""
    event = values.get("Event_Reference") or "|".join(
        values.get(item, "")
        for item in ("LA_Person_Unique_Identifier", "NHS_Number", "Event_Type", "Event_Start_Date")
    )
    digest = hashlib.sha256(
        "\x1f".join(f"{k}={v}" for k, v in sorted(values.items())).encode()
    ).hexdigest()[:16]
    return f"{event}@{digest}"


def _date(values: dict[str, str], item: str) -> str | None:
    """A CLD date, ISO (2024-03-01) or as UK spreadsheets write it
    (01/03/2024: day first, never read the American way)."""
    raw = values.get(item)
    if raw is None:
        return None
    raw = raw.strip()
    try:
        if found := _UK_DATE.fullmatch(raw):
            day, month, year = (int(part) for part in found.groups())
            return date(year, month, day).isoformat()
        # A spreadsheet may add a midnight time to an ISO date.
        if len(raw) == 10 or raw.endswith(("T00:00:00", " 00:00:00")):
            return datetime.strptime(raw[:10], "%Y-%m-%d").date().isoformat()
    except ValueError:
        pass
    raise Unmappable(f"{item} {raw!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def _coded(values: dict[str, str], defined: DefinedList) -> str | None:
    raw = values.get(defined.name)
    if raw is None:
        return None
    found = defined.value(raw)
    if found is None:
        raise Unmappable(f"{defined.name} {raw!r} is not a value of its CLD defined list")
    return found


def _ods(values: dict[str, str], item: str) -> str | None:
    raw = values.get(item)
    if raw is None:
        return None
    code = raw.replace(" ", "").upper()
    if not _ODS_CODE.fullmatch(code):
        raise Unmappable(f"{item} {raw!r} is not an ODS code")
    return code


def _patient(values: dict[str, str], council: str) -> tuple[dict[str, Any], str]:
    """The row's Patient, and its basis: what the keys of the person's
    records embed (``mappings.identity``)."""
    number = (
        checked_nhs_number(values["NHS_Number"], "NHS_Number") if "NHS_Number" in values else None
    )
    local = values.get("LA_Person_Unique_Identifier")
    identifiers = []
    if number:
        identifiers.append(nhs_identifier(number))
    if local:
        identifiers.append(local_identifier(council, local))
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id(council, number, local),
        "identifier": identifiers,
    }
    given, family = values.get("First_Name"), values.get("Last_Name")
    if given or family:
        patient["name"] = [
            {
                "use": "official",
                **({"family": family} if family else {}),
                **({"given": [given]} if given else {}),
            }
        ]
    if (gender := _coded(values, GENDERS)) is not None:
        patient["gender"] = gender
    if (born := _date(values, "Date_of_Birth")) is not None:
        patient["birthDate"] = born
    if (died := _date(values, "Date_of_Death")) is not None:
        patient["deceasedDateTime"] = died
    if postcode := values.get("Postcode"):
        patient["address"] = [{"postalCode": postcode.upper()}]
    if (practice := _ods(values, "GP_Practice_Code")) is not None:
        patient["generalPractitioner"] = [organisation(practice)]
    if (ethnic := _coded(values, ETHNICITIES)) is not None:
        # Every value of the CLD list folds onto a code of the NHS list.
        category = code_list("ethnic-category").concept(ethnic)
        patient["extension"] = [{"url": ETHNIC_URL, "valueCodeableConcept": category}]
    return patient, patient_basis(council, number, local)


def _social_history(
    council: str,
    patient: dict[str, Any],
    person: str,
    item: str,
    when: str,
    value: dict[str, Any],
) -> dict[str, Any]:
    """What the council last recorded of ``item``: one Observation per person
    (``person``, their basis) and item, updated as later rows say otherwise."""
    return {
        "resourceType": "Observation",
        "id": mapped_id(council, "Observation", f"{person}|{item}"),
        "status": "final",
        "category": [concept(OBSERVATION_CATEGORY, "social-history", "Social History")],
        "code": concept(CLD_ITEM_SYSTEM, item, item.replace("_", " ").lower().capitalize()),
        "subject": reference(patient),
        "effectiveDateTime": when,
        "performer": [organisation(council)],
        **value,
    }


def _person_facts(
    values: dict[str, str], council: str, patient: dict[str, Any], person: str, when: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    subject = reference(patient)
    if (reason := _coded(values, PRIMARY_SUPPORT_REASONS)) is not None:
        display = SUPPORT_REASONS[reason][0]
        group = reason.split("-")[0]
        found.append(
            {
                "resourceType": "Condition",
                "id": mapped_id(council, "Condition", f"{person}|primary-support-reason"),
                "clinicalStatus": concept(CONDITION_CLINICAL, "active"),
                "category": [
                    concept(SUPPORT_REASON_CATEGORY_SYSTEM, group, display.split(":")[0]),
                ],
                "code": concept(SUPPORT_REASON_SYSTEM, reason, display),
                "subject": subject,
                "recordedDate": when,
            }
        )
    if (status := _coded(values, ACCOMMODATION_STATUSES)) is not None:
        found.append(
            _social_history(
                council,
                patient,
                person,
                "Accommodation_Status",
                when,
                {"valueCodeableConcept": concept(CLD_VALUE_SYSTEM, fold_code(status), status)},
            )
        )
    if (carer := _coded(values, HAS_UNPAID_CARER)) is not None:
        value: dict[str, Any] = (
            {"valueBoolean": carer == "Yes"}
            if carer != "Unknown"
            else {
                "dataAbsentReason": concept(
                    "http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown", "Unknown"
                )
            }
        )
        found.append(_social_history(council, patient, person, "Has_Unpaid_Carer", when, value))
    return found


def fold_code(value: str) -> str:
    """A defined-list value as a code: its words joined by hyphens."""
    return re.sub(r"[^A-Za-z0-9]+", "-", value).strip("-").lower()


def _carer_links(
    values: dict[str, str], council: str, patient: dict[str, Any], person: str
) -> list[dict[str, Any]]:
    """A carer's row names up to three people they care for: the carer is a
    RelatedPerson on each of their records, found by the council's own id
    for them (whichever Patient that id landed on)."""
    client_type = _coded(values, CLIENT_TYPES)
    if client_type is None or not client_type.startswith("Carer"):
        return []
    local = values.get("LA_Person_Unique_Identifier")
    carer_key = local or patient["id"]
    id_key = local or person  # the basis, where the id's key names the Patient
    links = []
    for item in ("Linked_Person_ID", "Linked_Person_ID_2", "Linked_Person_ID_3"):
        cared_for = values.get(item)
        if not cared_for:
            continue
        identifier = local_identifier(council, cared_for)
        related: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "id": mapped_id(council, "RelatedPerson", f"{id_key}|cares-for|{cared_for}"),
            "identifier": [local_identifier(council, carer_key)],
            "patient": {
                "reference": f"Patient?identifier={identifier['system']}|{identifier['value']}"
            },
            "relationship": [
                concept(
                    "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                    "CAREGIVER",
                    "caregiver",
                    "Unpaid carer",
                )
            ],
        }
        for name in patient.get("name", []):
            related["name"] = [name]
        links.append(related)
    return links


def _period(start: str, end: str | None) -> dict[str, str]:
    return {"start": start, **({"end": end} if end else {})}


def _notes(*lines: tuple[str, str | None]) -> list[dict[str, str]]:
    return [{"text": f"{label}: {value}"} for label, value in lines if value]


@dataclass(frozen=True)
class _Event:
    """One row's event: what the resources made of it all need."""

    values: dict[str, str]
    council: str
    patient: dict[str, Any]
    key: str  # the event's identifier
    id_key: str  # what its resources' ids are made from: the same, naming the person by basis
    start: str
    end: str | None

    def parts(self) -> tuple[dict[str, str], str, dict[str, Any], str, str, str | None]:
        return self.values, self.council, self.patient, self.key, self.start, self.end


def _request(event: _Event) -> dict[str, Any]:
    values, council, patient, key, start, end = event.parts()
    route = _coded(values, ROUTES_OF_ACCESS)
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": mapped_id(council, "ServiceRequest", event.id_key),
        "identifier": [_event_identifier(council, key)],
        # CLD returns only requests whose outcome is settled; one without an
        # end date is still being worked on.
        "status": "completed" if end else "active",
        "intent": "order",
        "category": [concept(CLD_ITEM_SYSTEM, "Request", "Request for adult social care support")],
        "code": concept(None, None, text=values.get("Event_Description") or "Request for support"),
        "subject": reference(patient),
        "authoredOn": start,
        "occurrencePeriod": _period(start, end),
        "performer": [organisation(council)],
    }
    if route is not None:
        request["category"].append(
            concept(CLD_VALUE_SYSTEM, fold_code(route), route, f"Route of access: {route}")
        )
    if notes := _notes(("Outcome", values.get("Event_Outcome"))):
        request["note"] = notes
    return request


def _task(row: _Event, event: str) -> dict[str, Any]:
    values, council, patient, key, start, end = row.parts()
    if event == "Assessment":
        kind = values.get("Assessment_Type") or "Assessment"
        details = (
            ("Method", values.get("Method_of_Assessment")),
            ("Eligible needs identified", values.get("Eligible_Needs_Identified")),
        )
    else:
        kind = "Review"
        details = (
            ("Method", values.get("Method_of_Review")),
            ("Outcomes achieved", values.get("Review_Outcomes_Achieved")),
        )
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": mapped_id(council, "Task", row.id_key),
        "identifier": [_event_identifier(council, key)],
        "status": "completed" if end else "in-progress",
        "intent": "order",
        "code": concept(CLD_ITEM_SYSTEM, event, f"Social care {event.lower()}", kind),
        "for": reference(patient),
        "authoredOn": start,
        "executionPeriod": _period(start, end),
        "owner": organisation(council),
    }
    if values.get("Event_Description"):
        task["description"] = values["Event_Description"]
    if values.get("Event_Outcome"):
        task["businessStatus"] = {"text": values["Event_Outcome"]}
    if values.get("Review_Reason") and event == "Review":
        task["reasonCode"] = {"text": values["Review_Reason"]}
    if notes := _notes(*details):
        task["note"] = notes
    return task


def _service(event: _Event) -> list[dict[str, Any]]:
    values, council, patient, key, start, end = event.parts()
    service_type = _coded(values, SERVICE_TYPES)
    kinds = []
    if service_type is not None:
        kinds.append(concept(SERVICE_TYPE_SYSTEM, service_type, SERVICE_TYPE_NAMES[service_type]))
    if component := values.get("Service_Component"):
        kinds.append({"text": component})
    episode: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": mapped_id(council, "EpisodeOfCare", event.id_key),
        "identifier": [_event_identifier(council, key)],
        # An open service is active: the council's care relationship.
        "status": "finished" if end else "active",
        "patient": reference(patient),
        "managingOrganization": organisation(council),
        "period": _period(start, end),
    }
    if kinds:
        episode["type"] = kinds
    provider_id = values.get("Provider_CQC_Location_ID")
    provider_name = values.get("Provider_CQC_Location_Name")
    if not (provider_id or provider_name):
        return [episode]
    member: dict[str, Any] = {}
    if provider_id:
        member["identifier"] = {"system": CQC_LOCATION, "value": provider_id}
    if provider_name:
        member["display"] = provider_name
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": mapped_id(council, "CareTeam", event.id_key),
        "status": "inactive" if end else "active",
        "name": values.get("Event_Description") or "Social care service",
        "subject": reference(patient),
        "period": _period(start, end),
        "participant": [
            {"role": [{"text": "Care provider"}], "member": member},
            {"role": [{"text": "Commissioning council"}], "member": organisation(council)},
        ],
        "managingOrganization": [organisation(council)],
    }
    episode["team"] = [reference(team)]
    return [episode, team]


def _event_identifier(council: str, key: str) -> dict[str, str]:
    return {"system": f"urn:london-care-gateway:cld-event:{council.upper()}", "value": key}


# The element dating each kind of standing fact a row states.
_AS_AT = {"Condition": "recordedDate", "Observation": "effectiveDateTime"}


def map_row(values: dict[str, str], council: str) -> Mapped:
    """The resources of one CLD row from ``council`` (its ODS code)."""
    event = _coded(values, EVENT_TYPES)
    if event is None:
        raise Unmappable("Event_Type is empty")
    start = _date(values, "Event_Start_Date")
    if start is None:
        raise Unmappable("Event_Start_Date is empty")
    end = _date(values, "Event_End_Date")
    if end is not None and end < start:
        raise Unmappable(f"Event_End_Date {end} is before Event_Start_Date {start}")
    patient, person = _patient(values, council)
    named = values.get("Event_Reference")
    key = named or f"{patient['id']}|{event}|{start}"
    id_key = named or f"{person}|{event}|{start}"
    facts = _person_facts(values, council, patient, person, start)
    resources = [patient, *facts]
    resources += _carer_links(values, council, patient, person)
    row = _Event(values, council, patient, key, id_key, start, end)
    if event == "Request":
        resources.append(_request(row))
    elif event in ("Assessment", "Review"):
        resources.append(_task(row, event))
    else:
        resources += _service(row)
    # What the person's facts are as at the event: a row of an earlier event,
    # read later, does not undo what a later one said.
    return Mapped(patient["id"], resources, dated_by=dated_by(facts, _AS_AT))
