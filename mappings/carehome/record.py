"""One care-home resident record (``schema.json``, JSON Schema 2020-12): the
checks it must pass, the key of this version of it, and the resources it
maps to (``sections`` builds each section's).

A record names the home that exports it; it is refused unless that is the
organisation loading it, as the hospital feeds' MSH-4 is. The mapping
follows UK Core (https://simplifier.net/hl7fhirukcorer4) on FHIR R4.
"""

from __future__ import annotations

import json
from contextlib import suppress
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from mappings.carehome import sections
from mappings.carehome.sections import Record, Resident
from mappings.carehome.times import calendar_date, london_instant
from mappings.ukcore import Mapped, Unmappable, checked_nhs_number, patient_id, utc_moment

# Enough of a refusal to fix the export by; the rest follow once it is.
_ERRORS_SHOWN = 5
_MESSAGE_LIMIT = 300


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(files("mappings.carehome").joinpath("schema.json").read_text("utf-8"))
    checker = FormatChecker(formats=("date",))
    # The schema's own format: a date and time whose offset may be left off
    # (then it is London time), which "date-time" (RFC 3339) does not allow.
    checker.checks("london-date-time", raises=ValueError)(_is_london_instant)
    return Draft202012Validator(schema, format_checker=checker)


def _is_london_instant(value: object) -> bool:
    if isinstance(value, str):
        london_instant(value)
    return True


def _schema_problems(obj: dict[str, Any]) -> list[str]:
    problems = []
    for error in _validator().iter_errors(obj):
        message = error.message
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        problems.append(f"{error.json_path}: {message}")
    return problems


def validate_record(obj: dict[str, Any]) -> None:
    """Nothing if ``obj`` is a record this gateway can map; else
    ``Unmappable`` naming the JSON path (``$.medications[2].route``) of what
    is wrong."""
    problems = _schema_problems(obj)
    if problems:
        shown = "; ".join(problems[:_ERRORS_SHOWN])
        more = len(problems) - _ERRORS_SHOWN
        raise Unmappable(
            f"not a care-home record: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    person = obj["resident"]
    if person.get("nhsNumber"):
        checked_nhs_number(person["nhsNumber"], "$.resident.nhsNumber")
    elif not person.get("residentId"):
        raise Unmappable(
            "$.resident: the record has neither an NHS number (nhsNumber) nor the home's "
            "id for the resident (residentId)"
        )
    _check_consistent(obj)
    for section in sections.ITEM_KEYS:
        for _ in sections.keyed(obj, section):
            pass  # refuses two items that would be one resource


def _check_consistent(record: Record) -> None:
    """What one field says that another contradicts."""
    stay = record["residence"]
    if stay.get("endDate") and calendar_date(stay["endDate"]) < calendar_date(stay["startDate"]):
        raise Unmappable(
            f"$.residence.endDate: {stay['endDate']} is before startDate {stay['startDate']}"
        )
    if record.get("noKnownAllergies"):
        for index, allergy in enumerate(record.get("allergies", [])):
            if allergy["status"] == "active":
                raise Unmappable(
                    f"$.allergies[{index}]: an active allergy, but noKnownAllergies is true"
                )
    for index, decision in enumerate(record.get("advanceDecisions", [])):
        recommendation = decision.get("cprRecommendation")
        if recommendation and decision["kind"] not in ("DNACPR", "ReSPECT"):
            raise Unmappable(
                f"$.advanceDecisions[{index}].cprRecommendation: only a DNACPR or a ReSPECT "
                f"form makes a CPR recommendation, not {decision['kind']}"
            )
        if decision["kind"] == "DNACPR" and recommendation == "attempt":
            raise Unmappable(
                f"$.advanceDecisions[{index}].cprRecommendation: a DNACPR cannot recommend "
                "attempting CPR"
            )


def record_key(obj: dict[str, Any]) -> str:
    """The source's own id for this version of the record
    (``recordId@exportedAt``): the same record sent again has the same key,
    a later export of the resident another. Usable on a record that failed
    its checks, so a rejection can name it; ``""`` when it has no id."""
    record_id = obj.get("recordId")
    if not isinstance(record_id, str) or not record_id:
        return ""
    exported = obj.get("exportedAt")
    if not isinstance(exported, str):
        return record_id
    # The same moment written with or without its offset is one export.
    with suppress(ValueError):
        exported = london_instant(exported)
    return f"{record_id}@{exported}"


def map_care_home(obj: dict[str, Any], source_org: str) -> Mapped:
    """The resources of one resident's record from ``source_org`` (the
    home's ODS code, which must be the record's ``careHome.odsCode``)."""
    validate_record(obj)
    home = obj["careHome"]
    source = source_org.upper()
    if home["odsCode"].upper() != source:
        raise Unmappable(
            f"$.careHome.odsCode names {home['odsCode'].upper()}, but the file is loaded as "
            f"{source}"
        )
    person = obj["resident"]
    number = (
        checked_nhs_number(person["nhsNumber"], "$.resident.nhsNumber")
        if person.get("nhsNumber")
        else None
    )
    patient = sections.patient(
        obj, source, patient_id(source, number, person.get("residentId")), number
    )
    who = Resident(
        source=source,
        key=sections.resident_key(obj),
        patient_id=patient["id"],
        home_name=home.get("name"),
        exported_day=sections.exported_day(obj),
    )
    people = sections.contacts(obj, who)
    resources = [
        patient,
        sections.residence(obj, who),
        *people,
        *sections.concern(obj, who),
        *sections.about_me(obj, who),
        *sections.baseline(obj, who),
        *sections.medications(obj, who),
        *sections.allergies(obj, who),
        *sections.decisions(obj, who, people),
        *sections.alerts(obj, who),
        *sections.care_plan(obj, who),
        *sections.belongings(obj, who),
    ]
    # The export is the home's whole record of the resident as at its time.
    as_at = utc_moment(london_instant(obj["exportedAt"]))
    return Mapped(patient["id"], resources, as_at=as_at)
