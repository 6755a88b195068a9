"""FHIR JSON helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import fhirjson
from gateway.errors import InvalidRequest


def test_loads_reports_where_json_breaks() -> None:
    with pytest.raises(InvalidRequest) as caught:
        fhirjson.loads(b'{"a": }')
    assert caught.value.issues[0].code == "structure"
    assert "column" in caught.value.message


def test_fragments_are_embedded_verbatim() -> None:
    stored = b'{"resourceType":"Patient","id":"1"}'
    assert fhirjson.dumps({"entry": [{"resource": fhirjson.fragment(stored)}]}) == (
        b'{"entry":[{"resource":' + stored + b"}]}"
    )


def test_instants_are_fixed_width_utc_and_order_as_text() -> None:
    early = fhirjson.instant(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = fhirjson.instant(datetime(2026, 1, 2, 3, 4, 5, 10, tzinfo=UTC))
    assert early == "2026-01-02T03:04:05.000000Z"
    assert early < late and len(early) == len(late)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-03", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-04", datetime(2026, 3, 4, tzinfo=UTC)),
        ("2026-03-04T10:00:00+01:00", datetime(2026, 3, 4, 9, tzinfo=UTC)),
        ("2026-03-04T10:00:00Z", datetime(2026, 3, 4, 10, tzinfo=UTC)),
    ],
)
def test_parse_instant_accepts_partial_dates(text: str, expected: datetime) -> None:
    assert fhirjson.parse_instant(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13", "20260304", ""])
def test_parse_instant_rejects_nonsense(text: str) -> None:
    with pytest.raises(InvalidRequest):
        fhirjson.parse_instant(text)
