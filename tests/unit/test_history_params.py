"""History parameters: https://hl7.org/fhir/R4/http.html#history"""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.interactions.history import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    HistoryRequest,
    parse_history_params,
)


def test_defaults() -> None:
    assert parse_history_params([]) == HistoryRequest(count=DEFAULT_PAGE_SIZE)


def test_count_is_capped() -> None:
    assert parse_history_params([("_count", "100000")]).count == MAX_PAGE_SIZE


def test_since_is_normalised_to_a_utc_instant() -> None:
    request = parse_history_params([("_since", "2026-03-04T10:00:00+01:00")])
    assert request.since == "2026-03-04T09:00:00.000000Z"


def test_cursors_name_a_direction_and_position() -> None:
    assert parse_history_params([("_cursor", "b42")]).before_seq == 42
    assert parse_history_params([("_cursor", "a7")]).after_seq == 7


@pytest.mark.parametrize(
    "params",
    [[("_count", "x")], [("_cursor", "c1")], [("_cursor", "b")], [("_elements", "id")]],
)
def test_bad_parameters_are_rejected(params: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidRequest):
        parse_history_params(params)
