"""A JSON body over the shape limits (nesting, values, Bundle entries) is one
OperationOutcome naming the limit and its configured value (400 for
nesting, 413 for the others), whatever it was sent to, and writes nothing;
a body at the limits is taken."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import make_client

DEPTH, VALUES, ENTRIES = 20, 400, 5


@pytest.fixture
def api(store: Store) -> Any:
    with make_client(
        store, max_json_depth=DEPTH, max_json_values=VALUES, max_bundle_entries=ENTRIES
    ) as client:
        yield client


def _versions(store: Store) -> int:
    return int(str(store.select("SELECT count(*) FROM resource_version", [])[0][0]))


def _nested(levels: int) -> dict[str, Any]:
    """A Patient whose extension nests ``levels`` extensions deep."""
    extension: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(levels):
        extension = {"url": "http://example.org/branch", "extension": [extension]}
    return {"resourceType": "Patient", "extension": [extension]}


def _post(api: TestClient, path: str, body: Any, media: str = "application/fhir+json") -> Any:
    return api.post(path, content=orjson.dumps(body), headers={"content-type": media})


def _refused(answer: Any, code: str, limit: int) -> None:
    nesting = code == "GW-0104"
    assert answer.status_code == (400 if nesting else 413), answer.text
    issue = answer.json()["issue"][0]
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert issue["code"] == ("too-costly" if nesting else "too-long")
    assert issue["details"]["text"].startswith(code)
    assert str(limit) in issue["diagnostics"]


def _transaction(entries: int) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            }
            for _ in range(entries)
        ],
    }


def test_a_body_nested_past_the_limit_is_refused_on_every_route(
    api: TestClient, store: Store
) -> None:
    before = _versions(store)
    deep = _nested(DEPTH)
    for method, path in [
        ("POST", "/fhir/Patient"),
        ("PUT", "/fhir/Patient/a"),
        ("POST", "/fhir/Patient/$validate"),
    ]:
        answer = api.request(
            method,
            path,
            content=orjson.dumps(deep),
            headers={"content-type": "application/fhir+json"},
        )
        _refused(answer, "GW-0104", DEPTH)
    patch = [{"op": "add", "path": "/extension", "value": [_nested(DEPTH)]}]
    answer = api.patch(
        "/fhir/Patient/a",
        content=orjson.dumps(patch),
        headers={"content-type": "application/json-patch+json"},
    )
    _refused(answer, "GW-0104", DEPTH)
    assert _versions(store) == before


def test_a_body_with_too_many_values_is_refused(api: TestClient, store: Store) -> None:
    before = _versions(store)
    names = [{"family": "Smith", "given": ["Ann"]} for _ in range(VALUES // 3)]
    _refused(
        _post(api, "/fhir/Patient", {"resourceType": "Patient", "name": names}), "GW-0105", VALUES
    )
    assert _versions(store) == before


def test_a_bundle_with_too_many_entries_is_refused_whole(api: TestClient, store: Store) -> None:
    before = _versions(store)
    _refused(_post(api, "/fhir", _transaction(ENTRIES + 1)), "GW-0106", ENTRIES)
    batch = {**_transaction(ENTRIES + 1), "type": "batch"}
    _refused(_post(api, "/fhir", batch), "GW-0106", ENTRIES)
    assert _versions(store) == before


def test_bodies_at_the_limits_are_taken(api: TestClient, store: Store) -> None:
    answer = _post(api, "/fhir", _transaction(ENTRIES))
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"][:3] for e in answer.json()["entry"]] == ["201"] * ENTRIES
    # Nested to one level short of the limit: the validator's own rules apply.
    assert _post(api, "/fhir/Patient", _nested(DEPTH // 2 - 2)).status_code == 201
    # A narrative full of punctuation is counted exactly, not by its commas.
    text = '<div xmlns="http://www.w3.org/1999/xhtml">' + "a, b: [c] {d}, " * 200 + "</div>"
    answer = _post(
        api,
        "/fhir/Patient",
        {"resourceType": "Patient", "text": {"status": "generated", "div": text}},
    )
    assert answer.status_code == 201, answer.text


def test_a_search_form_over_its_limit_is_refused(store: Store) -> None:
    with make_client(store, max_search_form_bytes=1024) as api:
        form = {"content-type": "application/x-www-form-urlencoded"}
        answer = api.post("/fhir/Patient/_search", content="name=" + "a" * 1024, headers=form)
        assert answer.status_code == 413, answer.text
        assert "1024" in answer.json()["issue"][0]["diagnostics"]
        assert (
            api.post("/fhir/Patient/_search", content="name=ann", headers=form).status_code == 200
        )


def test_a_content_length_in_other_digits_is_not_read_as_a_number() -> None:
    """'¹' is a digit to str.isdigit but not to int: the declared length is
    ignored, and the body read as it comes."""
    import asyncio

    from gateway.http.middleware import read_body

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    assert asyncio.run(read_body(receive, {"content-length": "\u00b9"}, 10)) == b"{}"
