"""Dates as the half-open UTC range they cover, by their precision
(https://hl7.org/fhir/R4/search.html#date)."""

from __future__ import annotations

import pytest

from gateway.search.extract import HIGH_OPEN, LOW_OPEN, date_range
from gateway.store.values import DateRange


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("1950", "1950-01-01T00:00:00.000000Z", "1951-01-01T00:00:00.000000Z"),
        ("1950-02", "1950-02-01T00:00:00.000000Z", "1950-03-01T00:00:00.000000Z"),
        ("1950-12", "1950-12-01T00:00:00.000000Z", "1951-01-01T00:00:00.000000Z"),
        ("1950-01-01", "1950-01-01T00:00:00.000000Z", "1950-01-02T00:00:00.000000Z"),
        ("2024-02-29", "2024-02-29T00:00:00.000000Z", "2024-03-01T00:00:00.000000Z"),
        ("2024-03-12T10:15:00Z", "2024-03-12T10:15:00.000000Z", "2024-03-12T10:15:01.000000Z"),
        (
            "2024-03-12T10:15:00+01:00",
            "2024-03-12T09:15:00.000000Z",
            "2024-03-12T09:15:01.000000Z",
        ),
        (
            "2024-03-12T23:30:00-05:30",
            "2024-03-13T05:00:00.000000Z",
            "2024-03-13T05:00:01.000000Z",
        ),
        (
            "2024-03-12T10:15:00.25Z",
            "2024-03-12T10:15:00.250000Z",
            "2024-03-12T10:15:00.250001Z",
        ),
        ("2024-03-12T10:15:00", "2024-03-12T10:15:00.000000Z", "2024-03-12T10:15:01.000000Z"),
        ("0999-06", "0999-06-01T00:00:00.000000Z", "0999-07-01T00:00:00.000000Z"),
        ("9999", "9999-01-01T00:00:00.000000Z", HIGH_OPEN),
        ("9999-12-31", "9999-12-31T00:00:00.000000Z", HIGH_OPEN),
    ],
)
def test_precision_decides_the_range(text: str, low: str, high: str) -> None:
    """A year, month or day covers all of it; a time to the second that
    second; a fraction that microsecond. No zone means UTC; years past 9999
    are the open end."""
    assert date_range(text) == DateRange(low, high)


def test_the_open_ends_are_fixed_width() -> None:
    """The open ends sort as text like any other stamp."""
    assert len(LOW_OPEN) == len(HIGH_OPEN) == len(date_range("2024").low) == 27


@pytest.mark.parametrize("text", ["", "24-01-01", "2024-13", "2024-02-30", "yesterday", "2024-1-1"])
def test_what_is_not_a_date_is_an_error(text: str) -> None:
    """Validation keeps these out; extraction does not guess."""
    with pytest.raises(ValueError, match="is not a FHIR date"):
        date_range(text)
