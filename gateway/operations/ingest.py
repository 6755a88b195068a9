"""``$ingest``: a registered source pushes its own records (an HL7 v2 feed,
a CLD return, GP Connect structured records, care-home records) in the
format it keeps them, and each is mapped and loaded exactly as ``gateway
load`` would, authored by the client's organisation.

Which formats an organisation may push follows what it is: a hospital
sends ADT, a practice its GP records, a council its CLD return, a care
home its residents' records. The answer is a Parameters resource with a
summary and one part per record: loaded, unchanged (sent before) or
rejected with where it was and why, as a batch answers per entry.
"""

from __future__ import annotations

import io
from typing import Any

from gateway.errors import Forbidden, UnsupportedMediaType
from gateway.interactions.types import Acting
from gateway.loading.records import LoadReport, load_stream
from gateway.loading.sources import FORMATS
from gateway.store import Store

# The media types that name a format on their own.
_BY_MEDIA_TYPE = {
    "text/csv": "cld",
    "application/hl7-v2": "hl7v2",
    "x-application/hl7-v2+er7": "hl7v2",
    "application/edi-hl7": "hl7v2",
    "application/fhir+json": "gp-connect",
}

# The organisation kind that keeps records in each format.
PUSHED_BY = {
    "hl7v2": "hospital",
    "cld": "council",
    "gp-connect": "gp-practice",
    "care-home": "care-home",
}


def ingest_format(named: str | None, content_type: str | None) -> str:
    """The format a push is in: as named (``?format=``), else as its media
    type says; 415 when neither says one this gateway reads."""
    if named:
        if named not in FORMATS:
            raise UnsupportedMediaType(
                f"format {named!r} is not one this gateway reads ({', '.join(PUSHED_BY)})",
                code="GW-0140",
            )
        return named
    media_type = (content_type or "").split(";")[0].strip().lower()
    found = _BY_MEDIA_TYPE.get(media_type)
    if found is None or found not in FORMATS:
        raise UnsupportedMediaType(
            f"say which format the body is in: ?format= one of {', '.join(PUSHED_BY)}, "
            "or a media type of text/csv (CLD), application/hl7-v2 (ADT) or "
            "application/fhir+json (GP Connect)",
            code="GW-0141",
        )
    return found


def ingest(store: Store, acting: Acting, org_kind: str, fmt: str, body: bytes) -> dict[str, Any]:
    """Load the records of ``body`` as ``acting``'s organisation (of kind
    ``org_kind``) wrote them; the Parameters that answer for each."""
    if fmt not in PUSHED_BY:
        raise Forbidden(
            f"{fmt} records are loaded by the gateway's operator (gateway load), not pushed",
            code="GW-0614",
        )
    if PUSHED_BY.get(fmt) != org_kind:
        raise Forbidden(
            f"a {org_kind} does not keep {fmt} records: only a {PUSHED_BY.get(fmt)} pushes them",
            code="GW-0614",
        )
    # Every format writes the people its records are about: a token that may
    # not is refused outright, rather than record by record.
    acting.authorize("Patient", "c")
    acting.authorize("Patient", "u")
    report = LoadReport(outcomes=[])
    load_stream(store, fmt, acting, io.BytesIO(body), report, "request")
    return _parameters(report)


def _parameters(report: LoadReport) -> dict[str, Any]:
    summary = [
        {"name": "records", "valueInteger": report.records},
        {"name": "loaded", "valueInteger": report.loaded},
        {"name": "unchanged", "valueInteger": report.unchanged},
        {"name": "rejected", "valueInteger": len(report.rejections)},
    ]
    parameters: list[dict[str, Any]] = [{"name": "summary", "part": summary}]
    for outcome in report.outcomes or []:
        part: list[dict[str, Any]] = [
            {"name": "position", "valueString": outcome.where},
            {"name": "outcome", "valueCode": outcome.status},
        ]
        if outcome.key:
            part.append({"name": "sourceId", "valueString": outcome.key})
        if outcome.reason:
            part.append({"name": "reason", "valueString": outcome.reason})
        parameters.append({"name": "record", "part": part})
    return {"resourceType": "Parameters", "parameter": parameters}
