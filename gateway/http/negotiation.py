"""Content negotiation: FHIR JSON in and out, nothing else.

https://hl7.org/fhir/R4/http.html#mime-type. XML is a FHIR format this server
does not produce, so asking for it is answered clearly (406 for Accept or
``_format``, 415 for a request body) rather than with JSON the client did not
ask for.
"""

from __future__ import annotations

from gateway.errors import NotAcceptable, UnsupportedMediaType
from gateway.interactions.types import ReturnPreference

_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
_FORMAT_ALIASES = {"json", *_JSON_TYPES}
_HTML_ALIASES = {"html", "text/html"}


def _media_types(header: str) -> list[str]:
    types = []
    for part in header.split(","):
        media, _, params = part.strip().partition(";")
        if "q=0" in params.replace(" ", "") and "q=0." not in params.replace(" ", ""):
            continue  # explicitly refused
        if media:
            types.append(media.strip().lower())
    return types


def wants_html(accept: str | None, format_param: str | None) -> bool:
    """Whether a request that may have HTML (a document) asks for it:
    ``_format=html`` or ``text/html`` (a browser) preferred to FHIR JSON."""
    if format_param is not None:
        return format_param.strip().lower().split(";")[0] in _HTML_ALIASES
    for media in _media_types(accept or ""):
        if media in _JSON_TYPES:
            return False
        if media == "text/html":
            return True
    return False


_NDJSON_TYPES = {"application/fhir+ndjson", "application/ndjson", "application/x-ndjson"}


def check_acceptable(
    accept: str | None, format_param: str | None, html: bool = False, ndjson: bool = False
) -> None:
    """Refuse (406) a request for anything but FHIR JSON, or HTML where
    ``html`` allows it, or NDJSON where ``ndjson`` does (an export's file)."""
    if format_param is not None:
        aliases = _FORMAT_ALIASES | _HTML_ALIASES if html else _FORMAT_ALIASES
        if format_param.strip().lower().split(";")[0] not in aliases:
            raise NotAcceptable(
                f"_format={format_param!r}: this server produces FHIR JSON only "
                "(application/fhir+json)",
                code="GW-0406",
            )
        return
    if not accept:
        return
    for media in _media_types(accept):
        if media in _JSON_TYPES or media in ("*/*", "application/*"):
            return
        if html and media in ("text/html", "text/*"):
            return
        if ndjson and media in _NDJSON_TYPES:
            return
    raise NotAcceptable(
        f"Accept: {accept!r}: this server produces FHIR JSON only (application/fhir+json)",
        code="GW-0406",
    )


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted: send application/fhir+json",
            code="GW-0415",
        )


def parse_prefer(header: str | None) -> dict[str, str]:
    """``Prefer: return=minimal, handling=lenient`` → ``{"return": "minimal",
    "handling": "lenient"}`` (RFC 7240; later preferences do not override)."""
    preferences: dict[str, str] = {}
    for part in (header or "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            preferences.setdefault(name.strip().lower(), value.strip().strip('"'))
    return preferences


def return_preference(header: str | None) -> ReturnPreference:
    """The ``return`` preference; representation when absent or unknown, as the
    specification leaves unknown preferences to be ignored."""
    value = parse_prefer(header).get("return", "")
    for preference in ReturnPreference:
        if value.lower() == preference.value.lower():
            return preference
    return ReturnPreference.REPRESENTATION
