"""Per-client limits (``gateway.http.limits``): requests in flight and
requests a second, answered 429 with Retry-After, audited, and every slot
given back however the request ended; and failed token requests bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message

from gateway.auth.clients import ClientLimits, ClientRegistration, ClientRegistry
from gateway.auth.exchange import ASSERTION_TYPE
from gateway.store import Store
from tests.conftest import TEST_CLIENT, access_token, make_client
from tests.http.test_audit import entries


def refused_count(limit: str) -> float:
    """``gateway_limits_refused_total{limit=...}`` in this process's metrics."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("gateway_limits_refused_total", {"limit": limit})
    return value or 0.0


def _limited(store: Store, **limits: Any) -> str:
    """A token for the test client, its registration given ``limits``."""
    token = access_token(store)
    ClientRegistry(store).set_limits(TEST_CLIENT, ClientLimits(**limits))
    return token


def _throttled(answer: Any, limit: str) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) >= 1
    issue = answer.json()["issue"][0]
    assert issue["code"] == "throttled"
    assert limit in issue["diagnostics"], issue["diagnostics"]


def test_a_client_over_its_concurrency_is_refused_429_and_audited(store: Store) -> None:
    # A 404 is held until the not-found floor has passed: a request that
    # holds its slot for as long as the test needs.
    from gateway import metrics

    token = _limited(store, concurrency=1)
    before = refused_count("client-concurrency")
    with make_client(store, token=token, not_found_floor_ms=800) as client:
        holding: list[int] = []
        slow = threading.Thread(
            target=lambda: holding.append(client.get("/fhir/Patient/nobody").status_code)
        )
        slow.start()
        time.sleep(0.3)
        metrics.sample()
        in_flight = metrics.CLIENT_IN_FLIGHT._value.get()
        refused = client.get("/fhir/Patient?_count=1")
        slow.join()
        assert in_flight == 1
        assert refused_count("client-concurrency") == before + 1
        _throttled(refused, "concurrency 1")
        assert holding == [404]
        # Both answered: the slot is back, and the next request goes ahead.
        assert client.get("/fhir/Patient?_count=1").status_code == 200
        assert client.app.state.limiter.in_flight == 0  # type: ignore[attr-defined]
    refusals = [e for e in entries(store) if e["request_id"] == refused.headers["x-request-id"]]
    assert len(refusals) == 1
    assert refusals[0]["client_id"] == TEST_CLIENT
    assert refusals[0]["outcome"] != "0"


def test_a_client_over_its_rate_is_refused_until_its_bucket_fills(store: Store) -> None:
    token = _limited(store, rate=1, burst=2)
    before = refused_count("client-rate")
    with make_client(store, token=token) as client:
        assert [client.get("/fhir/Patient").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/fhir/Patient")
        _throttled(refused, "rate 1 a second with bursts of 2")
        assert refused_count("client-rate") == before + 1
        assert refused.headers["retry-after"] == "1"
        # Another client is not held back by this one.
        other = access_token(store, client_id="other-system")
        assert (
            client.get("/fhir/Patient", headers={"Authorization": f"Bearer {other}"}).status_code
            == 200
        )
        time.sleep(1.05)
        assert client.get("/fhir/Patient").status_code == 200


def test_defaults_come_from_the_settings_and_zero_is_no_limit(store: Store) -> None:
    with make_client(store, client_rate=1, client_burst=1) as client:
        assert client.get("/fhir/Patient").status_code == 200
        _throttled(client.get("/fhir/Patient"), "rate 1 a second with bursts of 1")
        # The registration's own limit wins over the default: 0, none.
        ClientRegistry(store).set_limits(TEST_CLIENT, ClientLimits(rate=0))
        assert all(client.get("/fhir/Patient").status_code == 200 for _ in range(5))


def test_a_429_says_nothing_of_what_was_asked_for(store: Store) -> None:
    token = _limited(store, rate=0.001, burst=1)
    with make_client(store, token=token) as client:
        assert client.get("/fhir/Patient/a").status_code == 404
        hidden = client.get("/fhir/Patient/b")
        missing = client.get("/fhir/Observation?subject=Patient/c")
    assert hidden.status_code == missing.status_code == 429
    assert hidden.content == missing.content
    assert hidden.headers["retry-after"] == missing.headers["retry-after"]


def test_a_slot_is_given_back_after_an_unexpected_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.interactions import search

    token = _limited(store, concurrency=1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    with make_client(store, token=token) as client:
        monkeypatch.setattr(search, "search", broken)
        assert client.get("/fhir/Patient").status_code == 500
        monkeypatch.undo()
        assert client.get("/fhir/Patient").status_code == 200
        assert client.app.state.limiter.in_flight == 0  # type: ignore[attr-defined]


def test_a_slot_is_given_back_when_the_client_goes_away_mid_answer(store: Store) -> None:
    """The server failing to send (the connection gone) while a response
    streams: the slot still comes back."""
    token = _limited(store, concurrency=1)
    with make_client(store, token=token) as client:
        app: Any = client.app

        async def gone_after_start() -> None:
            scope = _scope(app, "/fhir/Patient", [(b"authorization", f"Bearer {token}".encode())])

            async def receive() -> Message:
                return {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.body":
                    raise OSError("the client went away")

            with pytest.raises(OSError):
                await app(scope, receive, send)

        client.portal.call(gone_after_start)  # type: ignore[union-attr]
        assert app.state.limiter.in_flight == 0
        assert client.get("/fhir/Patient").status_code == 200


def _scope(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "app": app,
    }


def test_a_slot_is_given_back_when_a_streamed_file_is_cut_off(store: Store, tmp_path: Path) -> None:
    """A bulk export's file, sent as a stream: the client gone after its
    first chunk, and the slot comes back."""
    from tests.http.test_bulk_export import World

    world = World(store, tmp_path / "exports")
    try:
        ClientRegistry(store).set_limits("icb", ClientLimits(concurrency=1))
        _, manifest = world.export()
        path = "/fhir" + manifest["output"][0]["url"].split("/fhir", 1)[1]
        app: Any = world.api.app
        headers = [
            (b"authorization", f"Bearer {world.tokens['icb']}".encode()),
            (b"accept", b"application/fhir+ndjson"),
        ]
        sent: list[str] = []

        async def cut_off() -> None:
            async def receive() -> Message:
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                sent.append(message["type"])
                if message["type"] == "http.response.body":
                    raise OSError("the client went away")

            with pytest.raises(OSError):
                await app(_scope(app, path, headers), receive, send)

        world.api.portal.call(cut_off)  # type: ignore[union-attr]
        assert sent[:2] == ["http.response.start", "http.response.body"]
        assert app.state.limiter.in_flight == 0
        whole = world.api.get(path, headers={k.decode(): v.decode() for k, v in headers})
        assert whole.status_code == 200
        assert app.state.limiter.in_flight == 0
    finally:
        world.close()


def test_a_cancelled_request_gives_its_slot_back(store: Store) -> None:
    """A request task cancelled while it waits (a server shutting down, a
    disconnect the server acts on): the slot comes back too."""
    token = _limited(store, concurrency=1)
    with make_client(store, token=token, not_found_floor_ms=5000) as client:
        app: Any = client.app

        async def cancelled() -> None:
            bearer = [(b"authorization", f"Bearer {token}".encode())]
            scope = _scope(app, "/fhir/Patient/nobody", bearer)

            async def receive() -> Message:
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                return None

            task = asyncio.ensure_future(app(scope, receive, send))
            await asyncio.sleep(0.5)  # in the not-found floor, holding its slot
            assert app.state.limiter.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        client.portal.call(cancelled)  # type: ignore[union-attr]
        assert app.state.limiter.in_flight == 0


def test_limits_are_kept_in_the_registration_and_old_rows_read_as_defaults() -> None:
    old = (
        '{"client_id":"c1","name":"c1","org_ods":"A81001","org_name":"O","kind":"gp-practice",'
        '"scopes":"system/*.rs","keys":[],"disabled":false,"registered_at":"2025-01-01T00:00:00Z"}'
    )
    registration = ClientRegistration.from_json(old)
    assert registration.limits == ClientLimits()
    assert "limits" not in registration.to_json()
    import dataclasses

    limited = dataclasses.replace(registration, limits=ClientLimits(concurrency=4, rate=2.5))
    again = ClientRegistration.from_json(limited.to_json())
    assert again.limits == ClientLimits(concurrency=4, rate=2.5, burst=None)


def _bad_assertion(client: Any, client_id: str) -> Any:
    return client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "not.a.jwt",
            "client_id": client_id,
            "scope": "system/*.rs",
        },
    )


def test_failed_token_requests_are_bounded_per_source_and_client(store: Store) -> None:
    with make_client(
        store, token=None, token_failures_burst=3, token_failures_per_minute=1
    ) as client:
        assert [_bad_assertion(client, "someone").status_code for _ in range(3)] == [401] * 3
        before = refused_count("token-failures")
        refused = _bad_assertion(client, "someone")
        assert refused.status_code == 429
        assert refused_count("token-failures") == before + 1
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "slow_down"
        # Another client id from the same source still may, until the
        # source's own (five times larger) allowance is spent.
        assert _bad_assertion(client, "someone-else").status_code == 401
        assert sum(_bad_assertion(client, f"x{n}").status_code == 429 for n in range(15)) >= 3


def test_the_command_line_shows_and_sets_a_clients_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli import main

    for name in ("CONCURRENCY", "RATE", "BURST"):
        monkeypatch.delenv(f"GATEWAY_CLIENT_{name}", raising=False)
    database = ["--database-url", f"sqlite:///{tmp_path / 'gateway.db'}"]
    assert main(["migrate", *database]) == 0
    add = ["clients", *database, "add", "bench-x", "--org", "A81001", "--org-name", "Org"]
    add += ["--kind", "gp-practice", "--scope", "system/*.rs"]
    assert main([*add, "--generate-key", str(tmp_path / "k.pem")]) == 0
    capsys.readouterr()
    limits = ["clients", *database, "limits", "bench-x"]
    assert main(limits) == 0
    assert capsys.readouterr().out.strip() == (
        "bench-x: concurrency 8 (default); rate 500 (default); burst 1000 (default); "
        "per worker process"
    )
    assert main([*limits, "--concurrency", "16", "--rate", "0"]) == 0
    assert capsys.readouterr().out.strip() == (
        "bench-x: concurrency 16 (its own); rate no limit (its own); burst 1000 (default); "
        "per worker process"
    )
    assert main([*limits, "--reset", "--burst", "20"]) == 0
    assert "concurrency 8 (default)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*limits, "--rate", "-1"])
