"""The SQL on FHIR v2 specification's own test cases (``sof/``, vendored
with their licence; see ``sof/README.md``), run against the view runner.

Every case of every file runs: its rows must match ``expect`` (in any
order, as the specification's reference runner compares them), its columns
``expectColumns``, its row count ``expectCount``, and a case that
``expectError`` must be refused, when the view is compiled or when it is
run. A case this runner does not pass is listed in ``SKIPPED`` with the
reason, never left out silently.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.analytics.views import (
    ViewDefinitionError,
    ViewEvaluationError,
    compile_view,
    run_view,
)

SUITE = Path(__file__).parent / "sof"

# (file, title): why this runner does not pass the case.
SKIPPED: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for path in sorted(SUITE.glob("*.json")):
        suite = json.loads(path.read_text("utf-8"))
        for case in suite["tests"]:
            key = (path.name, case["title"])
            marks = [pytest.mark.skip(reason=SKIPPED[key])] if key in SKIPPED else []
            cases.append(
                pytest.param(
                    suite["resources"], case, id=f"{path.stem}: {case['title']}", marks=marks
                )
            )
    return cases


def _normal(value: Any) -> Any:
    """Numbers compared as numbers (1.5 as written, Decimal('1.5') as
    computed), lists and objects item by item."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, list):
        return [_normal(item) for item in value]
    if isinstance(value, dict):
        return {key: _normal(item) for key, item in value.items()}
    return value


def _key(row: dict[str, Any]) -> str:
    return json.dumps(_normal(row), sort_keys=True, default=str)


@pytest.mark.parametrize(("resources", "case"), _cases())
def test_specification_case(resources: list[dict[str, Any]], case: dict[str, Any]) -> None:
    """The view gives the rows, columns and errors the specification expects."""
    if case.get("expectError"):
        with pytest.raises((ViewDefinitionError, ViewEvaluationError)):
            run_view(compile_view(case["view"]), resources)
        return
    view = compile_view(case["view"])
    rows = run_view(view, resources)
    if "expectColumns" in case:
        assert list(view.column_names) == case["expectColumns"]
    if "expectCount" in case:
        assert len(rows) == case["expectCount"]
    if "expect" in case:
        assert sorted(map(_key, rows)) == sorted(map(_key, case["expect"]))


def test_skipped_cases_exist() -> None:
    """Every skipped case is one the suite has: the list only names real cases."""
    titles = {
        (path.name, case["title"])
        for path in SUITE.glob("*.json")
        for case in json.loads(path.read_text("utf-8"))["tests"]
    }
    assert set(SKIPPED) <= titles
