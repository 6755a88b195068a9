"""The per-request work budget over HTTP (``gateway.store.budget``): a
request past its rows or its time ends 422 too-costly naming the budget,
audited, and nothing of a transaction it was in is written; a push is
not held to it. How a runaway statement is ended inside each database is
tests/store/test_work_budget.py's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries
from tests.http.test_limits import refused_count

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _patients(store: Store, n: int, family: str = "Budget") -> None:
    with make_client(store) as api:
        for i in range(n):
            body = {"resourceType": "Patient", "name": [{"family": family, "given": [f"P{i}"]}]}
            assert api.post("/fhir/Patient", json=body).status_code == 201


def _too_costly(answer: Any, code: str, named: str) -> None:
    assert answer.status_code == 422, answer.text
    (issue,) = answer.json()["issue"]
    assert issue["code"] == "too-costly"
    assert issue["diagnostics"].startswith(code)
    assert named in issue["diagnostics"], issue["diagnostics"]


def test_a_search_reading_more_rows_than_the_budget_is_ended_and_audited(store: Store) -> None:
    _patients(store, 30)
    before = refused_count("work-rows")
    with make_client(store, work_budget_rows=10) as api:
        refused = api.get("/fhir/Patient?_count=50")
        _too_costly(refused, "GW-0330", "10 rows")
        assert refused_count("work-rows") == before + 1
        # A request within it is answered as ever.
        assert api.get("/fhir/Patient?_count=5&family=Nobody").status_code == 200
    (entry,) = [e for e in entries(store) if e["request_id"] == refused.headers["x-request-id"]]
    assert entry["outcome"] != "0"


def test_a_request_past_its_time_is_ended(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.search import paging

    _patients(store, 3)
    slow_read = paging.read_page

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.1)  # past the budget before the page's statement
        return slow_read(*args, **kwargs)

    monkeypatch.setattr(paging, "read_page", slow)
    import gateway.interactions.search as searches

    monkeypatch.setattr(searches, "read_page", slow)
    before = refused_count("work-time")
    with make_client(store, work_budget_ms=50) as api:
        _too_costly(api.get("/fhir/Patient?_count=50"), "GW-0331", "50 ms")
    assert refused_count("work-time") == before + 1


def test_a_transaction_ended_by_its_budget_writes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.interactions import write

    create_in = write.create_in
    calls: list[str] = []

    def slow_after_the_first(*args: Any, **kwargs: Any) -> Any:
        if calls:
            time.sleep(0.3)  # the first is written; the second comes past the budget
        calls.append("create")
        return create_in(*args, **kwargs)

    monkeypatch.setattr(write, "create_in", slow_after_the_first)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "Rolledback"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
            for _ in range(2)
        ],
    }
    with make_client(store, work_budget_ms=200) as api:
        _too_costly(api.post("/fhir", json=bundle), "GW-0331", "200 ms")
    assert calls == ["create", "create"]
    monkeypatch.undo()
    with make_client(store) as api:
        found = api.get("/fhir/Patient?family=Rolledback").json()
        assert found.get("entry", []) == []


def test_a_push_is_bounded_by_its_size_not_the_budget(store: Store) -> None:
    token = access_token(store, client_id="council-app", kind="council", org="713")
    body = (FIXTURES / "cld" / "return.csv").read_bytes()
    with make_client(store, token=token, work_budget_rows=1) as api:
        pushed = api.post("/fhir/$ingest", content=body, headers={"content-type": "text/csv"})
        assert pushed.status_code == 200, pushed.text


def test_in_a_batch_the_entries_before_the_budget_ran_out_stand(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.interactions import write

    create_in = write.create_in
    calls: list[str] = []

    def slow_after_the_first(*args: Any, **kwargs: Any) -> Any:
        if calls:
            time.sleep(0.3)
        calls.append("create")
        return create_in(*args, **kwargs)

    monkeypatch.setattr(write, "create_in", slow_after_the_first)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": f"Batch{n}"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
            for n in range(3)
        ],
    }
    with make_client(store, work_budget_ms=200) as api:
        answer = api.post("/fhir", json=bundle)
    assert answer.status_code == 200, answer.text
    statuses = [entry["response"]["status"] for entry in answer.json()["entry"]]
    assert statuses[0].startswith("201")
    assert [status.split()[0] for status in statuses[1:]] == ["422", "422"]
    monkeypatch.undo()
    with make_client(store) as api:
        for n, created in enumerate((True, False, False)):
            found = api.get(f"/fhir/Patient?family=Batch{n}").json().get("entry", [])
            assert bool(found) is created
