"""A person's access report: every organisation that touched their record,
when, for what purpose, under which rule, emergency accesses marked, read
from the audit log."""

from __future__ import annotations

from typing import Any

from gateway import fhirjson
from gateway.audit.events import EXPORT_SYSTEM
from gateway.directory import look_up, name_of
from gateway.identifiers import ODS_SYSTEM as ODS
from gateway.store import Querier, as_bytes

_MAX = 5000  # the most recent accesses listed


def summarise(entry: dict[str, Any]) -> dict[str, Any]:
    """What one logged request says, flat: organisation, client, when,
    purpose, interaction, outcome, shown and withheld counts, rules,
    emergency and its reason, the people touched."""
    agents = entry.get("agent") or [{}]
    client = agents[0]
    organisation = agents[1] if len(agents) > 1 else {"who": {}}
    rules = sorted(
        {
            detail["valueString"]
            for entity in entry.get("entity") or []
            if entity.get("description") == "consent decision"
            for detail in entity.get("detail") or []
            if detail.get("type") == "rule"
        }
    )
    counts: dict[str, str] = {}
    for entity in entry.get("entity") or []:
        if (entity.get("role") or {}).get("code") == "24":
            counts = {d["type"]: d["valueString"] for d in entity.get("detail") or []}
    purpose = entry["purposeOfEvent"][0]["coding"][0]["code"] if entry.get("purposeOfEvent") else ""
    return {
        "organization": (organisation["who"].get("identifier") or {}).get("value", ""),
        "organizationName": organisation["who"].get("display", ""),
        "client": ((client.get("who") or {}).get("identifier") or {}).get("value", ""),
        "when": entry.get("recorded", ""),
        "purpose": purpose,
        "interaction": entry["subtype"][0]["code"] if entry.get("subtype") else "",
        "outcome": entry.get("outcome", ""),
        "shown": int(counts.get("shown", 0)),
        "withheld": int(counts.get("withheld", 0)),
        "rules": rules,
        "emergency": purpose == "ETREAT",
        "breakGlassReason": next(
            (x["valueString"] for x in client.get("extension") or [] if "break-glass" in x["url"]),
            None,
        ),
        # A bulk export names the export it included the person in.
        "export": next(
            (
                entity.get("description", "")
                for entity in entry.get("entity") or []
                if ((entity.get("what") or {}).get("identifier") or {}).get("system")
                == EXPORT_SYSTEM
            ),
            None,
        ),
        "patients": [
            e["what"]["reference"].removeprefix("Patient/")
            for e in entry.get("entity") or []
            if str((e.get("what") or {}).get("reference", "")).startswith("Patient/")
            and (e.get("role") or {}).get("code") == "1"
        ],
    }


def _access(flat: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "organization", "valueIdentifier": {"system": ODS, "value": flat["organization"]}},
        {"name": "organizationName", "valueString": flat["organizationName"]},
        {"name": "client", "valueString": flat["client"]},
        {"name": "when", "valueInstant": flat["when"]},
        {"name": "purpose", "valueCode": flat["purpose"]},
        {"name": "interaction", "valueCode": flat["interaction"]},
        {"name": "outcome", "valueCode": flat["outcome"]},
        {"name": "shown", "valueInteger": flat["shown"]},
        {"name": "withheld", "valueInteger": flat["withheld"]},
        {"name": "emergency", "valueBoolean": flat["emergency"]},
    ]
    parts.extend({"name": "rule", "valueCode": rule} for rule in flat["rules"])
    if flat.get("export"):
        parts.append({"name": "export", "valueString": flat["export"]})
    if flat["breakGlassReason"]:
        parts.append({"name": "breakGlassReason", "valueString": flat["breakGlassReason"]})
    return {"name": "access", "part": parts}


def accesses(reader: Querier, patient_id: str) -> list[dict[str, Any]]:
    """Every access to the person's record, newest first, as ``summarise``
    gives them (at most the 5,000 most recent)."""
    rows = reader.select(
        "SELECT e.entry FROM audit_entry e JOIN audit_patient p ON p.idx = e.idx "
        "WHERE p.patient_id = ? AND e.subtype <> 'token' ORDER BY e.idx DESC LIMIT ?",
        [patient_id, _MAX],
    )
    return named(reader, [summarise(fhirjson.loads(as_bytes(row[0]))) for row in rows])


def named(reader: Querier, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``found`` (as ``summarise`` gives them), each ``organizationName``
    the organisation directory's name for its code (one look-up for them
    all); where the directory does not know the code, the name the entry
    logged, unless that was only the code again (a source's load)."""
    known = look_up(reader, {access["organization"] for access in found if access["organization"]})
    for access in found:
        if access["organization"]:
            access["organizationName"] = name_of(
                access["organization"], known, access["organizationName"]
            )
    return found


def by_organisation(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per organisation, most accesses first: how many, how many in an
    emergency, and the last (``found`` is newest first)."""
    summary: dict[str, dict[str, Any]] = {}
    for access in found:
        ods = access["organization"]
        entry = summary.setdefault(
            ods,
            {
                "organization": ods,
                "organizationName": access["organizationName"],
                "accesses": 0,
                "emergencyAccesses": 0,
                "lastAccess": access["when"],
            },
        )
        entry["accesses"] += 1
        entry["emergencyAccesses"] += access["emergency"]
    return sorted(summary.values(), key=lambda entry: -entry["accesses"])


def access_report(reader: Querier, patient_id: str) -> dict[str, Any]:
    """The report as a Parameters resource: a summary per organisation, then
    each access, newest first."""
    found = accesses(reader, patient_id)
    summary = [
        {
            "name": "organizationSummary",
            "part": [
                {"name": "organization", "valueString": org["organization"]},
                {"name": "organizationName", "valueString": org["organizationName"]},
                {"name": "accesses", "valueInteger": org["accesses"]},
                {"name": "emergencyAccesses", "valueInteger": org["emergencyAccesses"]},
                {"name": "lastAccess", "valueInstant": org["lastAccess"]},
            ],
        }
        for org in by_organisation(found)
    ]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
            *summary,
            *(_access(access) for access in found),
        ],
    }
