"""FHIR JSON in and out, fast: orjson, with stored resources spliced into
Bundles as pre-serialised fragments instead of being parsed and re-encoded."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import InvalidRequest, Issue

# FHIR's dateTime (https://hl7.org/fhir/R4/datatypes.html#dateTime): extended
# format only, and a time always with its zone.
_DATE_TIME = re.compile(
    r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)


def loads(body: bytes) -> Any:
    """Parse a request body, or raise ``InvalidRequest`` saying where it broke."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the body is not valid JSON: {exc}",
            code="GW-0100",
            issues=[Issue("structure", f"malformed JSON: {exc}")],
        ) from exc


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def fragment(content: bytes) -> orjson.Fragment:
    """Stored JSON to embed as-is in a larger document."""
    return orjson.Fragment(content)


def instant(moment: datetime | None = None) -> str:
    """A FHIR instant in UTC with microseconds, a fixed width so that stored
    instants order correctly as text."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    # isoformat is several times faster than strftime and pads alike.
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def parse_instant(value: str) -> datetime:
    """Parse a FHIR instant or dateTime (date-only and partial forms allowed, as
    ``_since`` accepts them) into an aware UTC datetime."""
    text = value.strip()
    if not _DATE_TIME.fullmatch(text):
        raise InvalidRequest(f"{value!r} is not a FHIR instant", code="GW-0303")
    try:
        if len(text) == 4:
            moment = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            moment = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"{value!r} is not a FHIR instant", code="GW-0303") from exc
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise InvalidRequest(
            f"{value!r} is outside the instants this server handles (years 1 to 9999 in UTC)",
            code="GW-0303",
        ) from None
