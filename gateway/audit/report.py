"""A person's access report: every organisation that touched their record,
when, for what purpose, under which rule, emergency accesses marked, read
from the audit log."""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway import fhirjson
from gateway.audit.log import as_bytes
from gateway.store import Querier

_MAX = 5000  # the most recent accesses listed


def _access(entry: dict[str, Any]) -> dict[str, Any]:
    client, organisation = (entry.get("agent") or [{}, {}])[:2]
    rules = sorted(
        {
            detail["valueString"]
            for entity in entry.get("entity") or []
            if entity.get("description") == "consent decision"
            for detail in entity.get("detail") or []
            if detail.get("type") == "rule"
        }
    )
    counts = {}
    for entity in entry.get("entity") or []:
        if (entity.get("role") or {}).get("code") == "24":
            counts = {d["type"]: d["valueString"] for d in entity.get("detail") or []}
    purpose = entry["purposeOfEvent"][0]["coding"][0]["code"] if entry.get("purposeOfEvent") else ""
    reason = next(
        (x["valueString"] for x in client.get("extension") or [] if "break-glass" in x["url"]),
        None,
    )
    parts: list[dict[str, Any]] = [
        {"name": "organization", "valueIdentifier": organisation["who"]["identifier"]},
        {"name": "organizationName", "valueString": organisation["who"].get("display", "")},
        {"name": "client", "valueString": client["who"]["identifier"]["value"]},
        {"name": "when", "valueInstant": entry["recorded"]},
        {"name": "purpose", "valueCode": purpose},
        {"name": "interaction", "valueCode": entry["subtype"][0]["code"]},
        {"name": "outcome", "valueCode": entry["outcome"]},
        {"name": "shown", "valueInteger": int(counts.get("shown", 0))},
        {"name": "withheld", "valueInteger": int(counts.get("withheld", 0))},
        {"name": "emergency", "valueBoolean": purpose == "ETREAT"},
    ]
    parts.extend({"name": "rule", "valueCode": rule} for rule in rules)
    if reason:
        parts.append({"name": "breakGlassReason", "valueString": reason})
    return {"name": "access", "part": parts}


def access_report(reader: Querier, patient_id: str) -> dict[str, Any]:
    """The report as a Parameters resource: a summary per organisation, then
    each access, newest first."""
    rows = reader.select(
        "SELECT e.entry FROM audit_entry e JOIN audit_patient p ON p.idx = e.idx "
        "WHERE p.patient_id = ? AND e.subtype <> 'token' ORDER BY e.idx DESC LIMIT ?",
        [patient_id, _MAX],
    )
    accesses = [_access(fhirjson.loads(as_bytes(row[0]))) for row in rows]
    seen: Counter[str] = Counter()
    emergencies: Counter[str] = Counter()
    last: dict[str, str] = {}
    names: dict[str, str] = {}
    for access in accesses:
        part = {p["name"]: p for p in access["part"]}
        ods = part["organization"]["valueIdentifier"]["value"]
        seen[ods] += 1
        emergencies[ods] += part["emergency"]["valueBoolean"]
        last.setdefault(ods, part["when"]["valueInstant"])
        names[ods] = part["organizationName"]["valueString"]
    summary = [
        {
            "name": "organizationSummary",
            "part": [
                {"name": "organization", "valueString": ods},
                {"name": "organizationName", "valueString": names[ods]},
                {"name": "accesses", "valueInteger": count},
                {"name": "emergencyAccesses", "valueInteger": emergencies[ods]},
                {"name": "lastAccess", "valueInstant": last[ods]},
            ],
        }
        for ods, count in seen.most_common()
    ]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
            *summary,
            *accesses,
        ],
    }
