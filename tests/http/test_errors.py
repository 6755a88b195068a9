"""Every failure is an OperationOutcome with the right status."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway import logs
from gateway.http.deps import authenticated
from gateway.store import Store
from tests.conftest import make_client
from tests.http.test_audit import entries
from tests.http.test_crud import patient


def _outcome(response_json: dict) -> dict:  # type: ignore[type-arg]
    assert response_json["resourceType"] == "OperationOutcome"
    assert response_json["issue"][0]["severity"] in ("error", "fatal")
    return response_json["issue"][0]  # type: ignore[no-any-return]


@pytest.fixture
def locked(store: Store) -> Iterator[TestClient]:
    """The API called without an access token."""
    with make_client(store, token=None) as client:
        yield client


def test_without_a_token_every_data_endpoint_is_401(locked: TestClient) -> None:
    for method, url in [
        ("GET", "/fhir/Patient/1"),
        ("GET", "/fhir/Patient/1/_history/1"),
        ("GET", "/fhir/Patient/1/_history"),
        ("GET", "/fhir/Patient/_history"),
        ("GET", "/fhir/_history"),
        ("GET", "/fhir/Patient"),
        ("POST", "/fhir/Patient"),
        ("PUT", "/fhir/Patient/1"),
        ("PUT", "/fhir/Patient?identifier=1"),
        ("DELETE", "/fhir/Patient/1"),
        ("POST", "/fhir"),
    ]:
        response = locked.request(method, url, json=patient(id="1"))
        assert response.status_code == 401, (method, url)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert _outcome(response.json())["code"] == "login"


def test_without_the_development_switch_nothing_is_written(
    locked: TestClient, store: Store
) -> None:
    locked.post("/fhir/Patient", json=patient())
    locked.put("/fhir/Patient/1", json=patient(id="1"))
    assert store.read("Patient", "1") is None


def test_metadata_and_health_need_no_credentials(locked: TestClient) -> None:
    assert locked.get("/fhir/metadata").status_code == 200
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/readyz").status_code == 200


def test_malformed_json_is_400_structure(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b'{"resourceType": "Patient",',
        headers={"content-type": "application/fhir+json"},
    )
    assert response.status_code == 400
    assert _outcome(response.json())["code"] == "structure"


def test_an_empty_body_is_400(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", content=b"", headers={"content-type": "application/fhir+json"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"resourceType": "Patient", "shoeSize": 9}, "Patient.shoeSize"),
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "birthDate": "1941-13-45"}, "Patient.birthDate"),
        ({"resourceType": "Patient", "name": [{"family": 7}]}, "Patient.name[0].family"),
        ({"resourceType": "Patient", "name": [{"given": [""]}]}, "Patient.name[0].given[0]"),
        ({"resourceType": "Patient", "active": None}, "Patient.active"),
        ({"resourceType": "Patient", "name": []}, "Patient.name"),
        ({"resourceType": "Patient", "id": "not an id!"}, "Patient.id"),
    ],
)
def test_invalid_fhir_is_400_with_the_element_path(
    client: TestClient,
    body: dict,
    path: str,  # type: ignore[type-arg]
) -> None:
    response = client.post("/fhir/Patient", json=body)
    assert response.status_code == 400, response.text
    expressions = [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert path in expressions


def test_a_body_of_the_wrong_resource_type_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json={"resourceType": "Observation"})
    assert response.status_code == 400
    assert client.post("/fhir/Patient", json=["Patient"]).status_code == 400
    assert client.post("/fhir/Patient", json={"name": []}).status_code == 400


def test_an_unsupported_resource_type_is_404(client: TestClient) -> None:
    response = client.get("/fhir/Basic/1")
    assert response.status_code == 404
    assert "Basic" in _outcome(response.json())["diagnostics"]
    assert client.post("/fhir/Basic", json={"resourceType": "Basic"}).status_code == 404


def test_unknown_paths_and_methods_are_outcomes(client: TestClient) -> None:
    assert _outcome(client.get("/nowhere").json())["code"] == "not-found"
    head = client.request("TRACE", "/fhir/Patient/1")
    assert head.status_code == 405
    assert _outcome(head.json())["code"] == "not-supported"


def test_an_unknown_search_parameter_is_400_naming_it(client: TestClient) -> None:
    response = client.get("/fhir/Patient?shoe-size=9")
    assert response.status_code == 400
    assert "shoe-size" in _outcome(response.json())["diagnostics"]


def test_asking_for_xml_is_406(client: TestClient) -> None:
    xml = client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 406
    assert "application/fhir+json" in _outcome(xml.json())["diagnostics"]
    assert client.get("/fhir/metadata?_format=xml").status_code == 406
    assert client.get("/fhir/metadata?_format=json").status_code == 200
    assert client.get("/fhir/metadata", headers={"Accept": "*/*"}).status_code == 200
    assert (
        client.get(
            "/fhir/metadata", headers={"Accept": "application/fhir+xml;q=0.9, application/json"}
        ).status_code
        == 200
    )


def test_sending_xml_is_415(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b"<Patient xmlns='http://hl7.org/fhir'/>",
        headers={"content-type": "application/fhir+xml"},
    )
    assert response.status_code == 415
    assert _outcome(response.json())["code"] == "not-supported"


def test_a_body_over_the_limit_is_413_and_nothing_is_written(store: Store) -> None:
    with make_client(store, max_body_bytes=2048) as client:
        big = patient(name=[{"family": "x" * 4096}])
        response = client.post("/fhir/Patient", json=big)
        assert response.status_code == 413
        assert _outcome(response.json())["code"] == "too-long"
        assert "entry" not in client.get("/fhir/_history").json()
        chunked = client.post(
            "/fhir/Patient",
            content=iter([b'{"resourceType":"Patient","name":[{"family":"', b"y" * 4096, b'"}]}']),
            headers={"content-type": "application/fhir+json"},
        )
        assert chunked.status_code == 413


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    echoed = client.get("/fhir/metadata", headers={"X-Request-Id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    generated = client.get("/fhir/Patient/none", headers={"X-Request-Id": "bad id\n"})
    assert generated.headers["x-request-id"] != "bad id\n"
    assert len(generated.headers["x-request-id"]) == 32


def test_primitives_must_have_their_json_types(client: TestClient) -> None:
    """FHIR JSON does not coerce: "yes" is not a boolean, "2" not an integer."""
    for body, path in [
        ({"active": "yes"}, "Patient.active"),
        ({"active": 1}, "Patient.active"),
        ({"multipleBirthInteger": "2"}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": 2.5}, "Patient.multipleBirthInteger"),
        (
            {"extension": [{"url": "https://x", "valueDecimal": "1.5"}]},
            "Patient.extension[0].valueDecimal",
        ),
    ]:
        response = client.post("/fhir/Patient", json={"resourceType": "Patient", **body})
        assert response.status_code == 400, body
        assert response.json()["issue"][0]["expression"] == [path]


def test_a_code_outside_a_required_binding_is_422(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json=patient(gender="bogus"))
    assert response.status_code == 422
    issue = _outcome(response.json())
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Patient.gender"]
    status = {"resourceType": "Observation", "status": "done", "code": {"text": "pulse"}}
    assert client.post("/fhir/Observation", json=status).status_code == 422
    corrected = {**status, "status": "corrected"}
    assert client.post("/fhir/Observation", json=corrected).status_code == 201


def test_a_transaction_entry_with_a_bad_code_is_422_and_writes_nothing(
    client: TestClient,
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient(gender="bogus"), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 422
    assert _outcome(response.json())["expression"] == ["Bundle.entry[1].resource.gender"]
    assert "entry" not in client.get("/fhir/_history").json()


async def _broken(request: Request) -> Response:
    """A handler with a bug, after authentication when asked to."""
    if request.query_params.get("authenticated") == "yes":
        await authenticated(request)
    raise RuntimeError("the bug's own words")


class _Lines(logging.Handler):
    """Log records as the gateway writes them, formatted as they are logged
    (the request id is read from the request's context)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict] = []  # type: ignore[type-arg]

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@pytest.fixture
def broken(store: Store) -> Iterator[tuple[TestClient, _Lines]]:
    """The API with one more route, ``/broken``, whose handler raises, and
    the gateway's log lines."""
    with make_client(store) as client:
        app = client.app
        assert isinstance(app, Starlette)
        app.router.routes.insert(0, Route("/broken", _broken, methods=["GET"]))
        lines = _Lines()
        logger = logging.getLogger("gateway")
        logger.addHandler(lines)
        try:
            yield client, lines
        finally:
            logger.removeHandler(lines)


def test_a_bug_is_a_500_outcome_with_the_request_id_and_no_details(
    broken: tuple[TestClient, _Lines],
) -> None:
    client, lines = broken
    response = client.get("/broken", headers={"X-Request-Id": "trace-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    issue = _outcome(response.json())
    assert (issue["code"], issue["severity"]) == ("exception", "fatal")
    assert issue["diagnostics"].startswith("GW-0500")
    for detail in ("RuntimeError", "own words", "Traceback", "_broken"):
        assert detail not in response.text
    logged = [line for line in lines.lines if "exception" in line]
    assert len(logged) == 1 and logged[0]["request_id"] == "trace-500"
    assert "RuntimeError: the bug's own words" in logged[0]["exception"]


def test_a_bug_in_an_authenticated_request_is_audited_as_a_serious_failure(
    broken: tuple[TestClient, _Lines], store: Store
) -> None:
    """The 500 waits for its audit entry, as every authenticated answer does."""
    client, _ = broken
    response = client.get("/broken?authenticated=yes", headers={"X-Request-Id": "trace-8"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-8"
    assert _outcome(response.json())["diagnostics"].startswith("GW-0500")
    last = entries(store)[-1]
    assert (last["request_id"], last["outcome"]) == ("trace-8", "8")
    assert last["event"]["outcomeDesc"] == "HTTP 500"


def test_a_bug_before_authentication_has_an_id_and_no_audit_entry(
    broken: tuple[TestClient, _Lines], store: Store
) -> None:
    client, _ = broken
    before = len(entries(store))
    response = client.get("/broken", headers={"X-Request-Id": "bad id\n"})
    assert response.status_code == 500
    assert len(response.headers["x-request-id"]) == 32
    assert len(entries(store)) == before


def test_a_body_nested_too_deep_is_400_whatever_its_depth(client: TestClient) -> None:
    """Nested far deeper than a resource needs: a clear 400 naming the limit
    (the JSON parser's own for the deepest), never a 500."""
    for depth in (100, 300, 600):
        body = (
            '{"resourceType":"Patient","extension":['
            + '{"url":"http://x","extension":[' * (depth - 1)
            + '{"url":"http://x","valueString":"x"}'
            + "]}" * (depth - 1)
            + "]}"
        )
        answer = client.post(
            "/fhir/Patient", content=body, headers={"Content-Type": "application/fhir+json"}
        )
        assert answer.status_code == 400, (depth, answer.text[:300])
        assert "deep" in answer.text or "depth" in answer.text
