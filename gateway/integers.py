"""Whole numbers a request gives (counts, versions, page cursors, log
indexes), read as the databases can hold them.

PostgreSQL's BIGINT and SQLite's INTEGER are both signed 64-bit: a larger
number reaching either is a driver error (SQLite: ``OverflowError``), not an
empty answer. And ``str.isdigit`` is no guard: it takes ``"²"`` and ``"٣"``,
which ``int`` refuses or reads. So every such number is read here.
"""

from __future__ import annotations

MAX_BIGINT = 2**63 - 1
"""The largest integer a BIGINT (PostgreSQL) or INTEGER (SQLite) holds."""

_MAX_DIGITS = len(str(MAX_BIGINT))


def whole_number(text: str) -> int | None:
    """``text`` as a non-negative integer, if it is one written in ASCII
    digits that the databases can hold (at most ``MAX_BIGINT``); ``None``
    for anything else (a sign, a space, other digits, a larger number)."""
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(digits)
    return value if value <= MAX_BIGINT else None


def is_digits(text: str) -> bool:
    """Whether ``text`` is written in ASCII digits only (however large)."""
    return text.isascii() and text.isdigit()
