"""Whole numbers from requests, read as the databases can hold them."""

from __future__ import annotations

import pytest

from gateway.integers import MAX_BIGINT, is_digits, whole_number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        (str(MAX_BIGINT), MAX_BIGINT),
        ("0" * 40 + "1", 1),  # leading zeros are not size
        (str(MAX_BIGINT + 1), None),
        ("9" * 5000, None),  # past int()'s own digit limit: still no error
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("1e3", None),
        ("²", None),  # "²".isdigit(), but int("²") fails
        ("٣", None),  # an Arabic-Indic digit, which int() would read
    ],
)
def test_whole_number(text: str, number: int | None) -> None:
    assert whole_number(text) == number


def test_is_digits_is_ascii_only() -> None:
    assert is_digits("9" * 100)
    assert not is_digits("²") and not is_digits("") and not is_digits("-1")
