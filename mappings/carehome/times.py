"""Times in care-home records: an offset when the export gives one, else UK
local time (Europe/London), written as a FHIR dateTime with its offset, as
the hospital feeds' times are (``mappings.hl7v2.adt.instant``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def london_instant(raw: str) -> str:
    """``raw`` (ISO 8601 date and time) as a FHIR dateTime with an offset;
    ``ValueError`` if it is not a real moment. A wall-clock time that a
    change of the clocks skips or repeats is read as the first of them."""
    if _DATE.fullmatch(raw):
        raise ValueError(f"{raw!r} has no time of day")
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LONDON)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def calendar_date(raw: str) -> str:
    """``raw`` (YYYY-MM-DD) if it is a real day; ``ValueError`` otherwise."""
    if not _DATE.fullmatch(raw):
        raise ValueError(f"{raw!r} is not YYYY-MM-DD")
    return date.fromisoformat(raw).isoformat()


def date_or_instant(raw: str) -> str:
    """A date stays a date; a date and time becomes an instant."""
    return calendar_date(raw) if _DATE.fullmatch(raw) else london_instant(raw)


def day_of(raw: str) -> str:
    """The calendar day a date or date and time falls on, in its own offset."""
    return date_or_instant(raw)[:10]
