"""Operations endpoints in-process: /readyz says whether a write commits and
the audit log can append, and names what failed; /metrics is served only
to the holder of the token file's token, and its labels carry route
templates and rule names, never ids (issue 30). The outages themselves,
on real servers, are in tests/e2e/test_outage.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.store import Store
from tests.conftest import make_client

_TOKEN = "a-scraper-token-of-some-length"


def _diagnostics(answer: object) -> str:
    outcome = answer.json()  # type: ignore[attr-defined]
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return " | ".join(issue["diagnostics"] for issue in outcome["issue"])


def test_ready_means_a_write_committed(store: Store) -> None:
    with make_client(store) as api:
        answer = api.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "ready"}
    assert store.index_version("readiness") is not None  # the probe's one row


def test_a_store_that_takes_no_write_is_not_ready_and_says_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(store) as api:
        assert api.get("/readyz").status_code == 200

        def refuse() -> None:
            raise StoreUnavailable("attempt to write a readonly database")

        monkeypatch.setattr(store, "check_writable", refuse)
        # Kept a second: a load balancer's polling costs one write a second.
        assert api.get("/readyz").status_code == 200
        time.sleep(1.1)
        answer = api.get("/readyz")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "store: a write cannot commit: attempt to write a readonly" in _diagnostics(answer)
        assert api.get("/healthz").status_code == 200  # liveness is not readiness
        monkeypatch.undo()
        time.sleep(1.1)
        assert api.get("/readyz").status_code == 200


def test_an_audit_log_that_cannot_append_is_not_ready(store: Store) -> None:
    with make_client(store) as api:
        api.app.state.audit.close()  # type: ignore[attr-defined]
        answer = api.get("/readyz")
        assert answer.status_code == 503
        assert "audit: the log cannot append" in _diagnostics(answer)


def test_the_probe_writes_nothing_into_the_audit_log(store: Store) -> None:
    with make_client(store) as api:
        before = store.select("SELECT COUNT(*) FROM audit_entry", [])[0][0]
        for _ in range(3):
            assert api.get("/readyz").status_code == 200
            time.sleep(1.05)
        assert store.select("SELECT COUNT(*) FROM audit_entry", [])[0][0] == before


def test_without_a_token_file_there_are_no_metrics(store: Store) -> None:
    with make_client(store, token=None) as api:
        answer = api.get("/metrics", headers={"Authorization": f"Bearer {_TOKEN}"})
        assert answer.status_code == 404
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_metrics_go_only_to_the_token_and_name_no_one(store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text(f"{_TOKEN}\n")
    with make_client(store, metrics_token_file=str(token_file)) as api:
        created = api.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert created.status_code == 201
        patient = created.json()["id"]
        assert api.get(f"/fhir/Patient/{patient}").status_code == 200

        assert api.get("/metrics", headers={"Authorization": ""}).status_code == 401
        wrong = api.get("/metrics", headers={"Authorization": f"Bearer {_TOKEN}x"})
        assert wrong.status_code == 401
        answer = api.get("/metrics", headers={"Authorization": f"Bearer {_TOKEN}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
    assert patient not in text
    for metric in (
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds_bucket",
        "gateway_audit_queue_depth",
        "gateway_audit_commit_seconds_bucket",
        "gateway_consent_decisions_total",
        "gateway_db_pool_connections",
    ):
        assert metric in text, metric
    assert 'route="/fhir/{res_type:' in text
    assert 'status="201"' in text
    assert 'gateway_consent_decisions_total{decision="permit",rule="author"}' in text


def test_a_token_file_too_short_stops_the_start(store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("short")
    api = make_client(store, metrics_token_file=str(token_file))
    with pytest.raises(ValueError, match="at least 16"), api:
        pass
