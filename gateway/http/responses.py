"""FHIR responses: JSON bodies, the version headers and ``Prefer: return``.

https://hl7.org/fhir/R4/http.html#versioning (ETag, Last-Modified) and
https://hl7.org/fhir/R4/http.html#ops (Prefer). Stored resources are sent as
the bytes the store holds; they are never parsed on the way out.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.responses import Response

from gateway import fhirjson, outcomes
from gateway.errors import GatewayError
from gateway.interactions.types import ReturnPreference
from gateway.store import StoredVersion

FHIR_JSON = "application/fhir+json; charset=utf-8"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        return fhirjson.dumps(content)


class PlainJsonResponse(FhirResponse):
    """JSON that is not a FHIR resource (a proof, a review queue), so not
    ``application/fhir+json``."""

    media_type = "application/json"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(instant: str) -> str:
    """A stored instant (always UTC, ``2026-01-02T03:04:05.000000Z``) as an
    HTTP-date (RFC 9110) for Last-Modified. On every read, so no parsing of
    general dates: the stored form is fixed."""
    day = date.fromisoformat(instant[:10])
    return (
        f"{_DAYS[day.weekday()]}, {day.day:02d} {_MONTHS[day.month - 1]} {day.year} "
        f"{instant[11:19]} GMT"
    )


def version_headers(version: StoredVersion) -> dict[str, str]:
    return {
        "ETag": f'W/"{version.version}"',
        "Last-Modified": http_date(version.last_updated),
    }


def resource(version: StoredVersion) -> FhirResponse:
    """200 with the stored resource (read, vread)."""
    return FhirResponse(version.content, status_code=200, headers=version_headers(version))


def written(
    version: StoredVersion, status: int, prefer: ReturnPreference, base_url: str
) -> FhirResponse:
    """The answer to create or update: the status, Location and version
    headers, and the body the client's ``Prefer: return`` asked for."""
    headers = version_headers(version)
    headers["Location"] = (
        f"{base_url}/{version.res_type}/{version.res_id}/_history/{version.version}"
    )
    if prefer is ReturnPreference.MINIMAL:
        return FhirResponse(None, status_code=status, headers=headers)
    if prefer is ReturnPreference.OPERATION_OUTCOME:
        body = outcomes.information(
            f"{outcomes.status_line(status)}: {version.res_type}/{version.res_id} "
            f"version {version.version}"
        )
        return FhirResponse(body, status_code=status, headers=headers)
    return FhirResponse(version.content, status_code=status, headers=headers)


def bundle(body: dict[str, Any]) -> FhirResponse:
    return FhirResponse(body, status_code=200)


def error(exc: GatewayError, headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(
        outcomes.operation_outcome(exc), status_code=outcomes.status_of(exc), headers=headers
    )
