"""Server-assigned ids are UUIDv7: valid FHIR ids, unique, ordered by time."""

from __future__ import annotations

import time
import uuid

from conformance.validation import ID_PATTERN
from gateway.interactions.write import new_id


def test_an_id_is_a_version_7_uuid_and_a_valid_fhir_id() -> None:
    made = new_id()
    parsed = uuid.UUID(made)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == made
    assert ID_PATTERN.match(made)


def test_an_id_carries_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(made).int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    made = []
    for _ in range(5):
        made.append(new_id())
        time.sleep(0.002)
    assert made == sorted(made)


def test_ids_made_in_the_same_millisecond_differ() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000
