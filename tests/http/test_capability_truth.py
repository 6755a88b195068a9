"""The CapabilityStatement tells the truth: every interaction, flag, search
parameter, include and operation it declares is tried on the running server
and works; what it does not declare is refused; and every route the server
has is something it declares."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.auth.tokens import Purpose
from gateway.http.routes import ROUTES
from gateway.store import Store
from tests.conftest import TEST_ORG, access_token, make_client

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "r4"
PATCH = "application/json-patch+json"
# A value of each search parameter type that any server must accept.
SAMPLE = {
    "token": "x",
    "string": "x",
    "date": "ge2020-01-01",
    "reference": "Patient/x",
    "quantity": "5",
    "uri": "http://example.org/x",
    "number": "1",
}
# The handlers of the routes, and what in the CapabilityStatement each serves.
SERVES: dict[str, tuple[str, str]] = {
    "read": ("interaction", "read"),
    "vread": ("interaction", "vread"),
    "update": ("interaction", "update"),
    "conditional_update": ("interaction", "update"),
    "patch": ("interaction", "patch"),
    "conditional_patch": ("interaction", "patch"),
    "delete": ("interaction", "delete"),
    "create": ("interaction", "create"),
    "search_type": ("interaction", "search-type"),
    "search_by_post": ("interaction", "search-type"),
    "compartment_search": ("interaction", "search-type"),
    "instance_history": ("interaction", "history-instance"),
    "type_history": ("interaction", "history-type"),
    "search_system": ("system", "search-system"),
    "system_history": ("system", "history-system"),
    "batch_or_transaction": ("system", "transaction"),
    "patient_everything": ("operation", "everything"),
    "patient_document": ("operation", "summary"),
    "access_report": ("operation", "access-report"),
    "validate": ("operation", "validate"),
    "subscription_status": ("operation", "status"),
    "subscription_events": ("operation", "events"),
    "access_check": ("system-operation", "access-check"),
    "ingest": ("system-operation", "ingest"),
    "bulk_export": ("system-operation", "export"),
    # An export's status and files are the export operation's own.
    "bulk_export_status": ("system-operation", "export"),
    "bulk_export_file": ("system-operation", "export"),
    "metadata": ("metadata", "capabilities"),
}


def _own(reference_or_id: str) -> str:
    """An example's id as one of the test organisation's own."""
    return f"{TEST_ORG}-{reference_or_id}"


def _example(res_type: str) -> dict[str, Any]:
    """The rich R4 example of ``res_type``, its id and every reference made
    the test organisation's own, so each can be written where it says."""
    text = (EXAMPLES / f"{res_type}.json").read_text()
    text = re.sub(
        r'"reference": "([A-Z][A-Za-z]+)/([A-Za-z0-9.-]+)"',
        lambda m: f'"reference": "{m[1]}/{_own(m[2])}"',
        text,
    )
    resource: dict[str, Any] = json.loads(text)
    resource["id"] = _own(resource["id"])
    if res_type == "Patient":
        # Registered with the test organisation: a practice records and
        # changes its patients' Consents.
        resource["generalPractitioner"] = [
            {
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": TEST_ORG,
                }
            }
        ]
    return resource


@pytest.fixture
def capability(client: TestClient) -> dict[str, Any]:
    statement: dict[str, Any] = client.get("/fhir/metadata").json()
    return statement


def _declared(capability: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["type"]: r for r in capability["rest"][0]["resource"]}


def test_every_route_serves_something_declared(capability: dict[str, Any]) -> None:
    declared = _declared(capability)
    interactions = {i["code"] for r in declared.values() for i in r["interaction"]}
    operations = {o["name"] for r in declared.values() for o in r.get("operation", [])}
    system = {i["code"] for i in capability["rest"][0]["interaction"]}
    system_operations = {o["name"] for o in capability["rest"][0]["operation"]}
    for route in ROUTES:
        assert isinstance(route, Route)
        handler = route.endpoint.__name__
        assert handler in SERVES, f"{route.path} ({handler}) serves nothing declared"
        kind, code = SERVES[handler]
        known = {
            "interaction": interactions,
            "operation": operations,
            "system": system,
            "system-operation": system_operations,
            "metadata": {"capabilities"},
        }[kind]
        assert code in known, f"{route.path} serves {code}, which is not declared"
    # And the other way: every operation declared has a route.
    served = {code for kind, code in SERVES.values() if "operation" in kind}
    assert operations | system_operations <= served | {"red-bag"}


def test_each_type_does_what_it_declares_and_nothing_else(
    store: Store, client: TestClient, capability: dict[str, Any]
) -> None:
    declared = _declared(capability)
    _organisations_named(client)
    # Who and what the others name first: a Consent's actors must resolve.
    first = ["Patient", "Organization", "Practitioner", "PractitionerRole", "Location"]
    order = [*first, *sorted(t for t in declared if t not in first)]
    for res_type in order:
        entry = declared[res_type]
        can = {i["code"] for i in entry["interaction"]}
        if "update" not in can:
            # Written only by the gateway: every write is refused.
            assert client.post(f"/fhir/{res_type}", json=_example(res_type)).status_code == 405
            assert client.put(f"/fhir/{res_type}/x", json=_example(res_type)).status_code == 405
            refused = client.patch(
                f"/fhir/{res_type}/x", content=b"[]", headers={"Content-Type": PATCH}
            )
            assert refused.status_code == 405
            assert client.delete(f"/fhir/{res_type}/x").status_code == 405
            continue  # its reads are for auditors (test_audit)
        _writes(client, res_type, entry)


def _organisations_named(client: TestClient) -> None:
    """Every Organization the examples name, with an ODS code of its own: a
    Consent's actors must resolve to one."""
    named = sorted(
        {
            found
            for path in EXAMPLES.glob("*.json")
            for found in re.findall(
                r'"reference": "Organization/([A-Za-z0-9.-]+)"', path.read_text()
            )
        }
    )
    own = json.loads((EXAMPLES / "Organization.json").read_text())["id"]
    for number, name in enumerate(n for n in named if n != own):
        organisation = {
            "resourceType": "Organization",
            "id": _own(name),
            "identifier": [
                {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": f"Q9{number:03d}",
                }
            ],
            "name": name,
        }
        assert client.put(f"/fhir/Organization/{_own(name)}", json=organisation).status_code == 201


def _writes(client: TestClient, res_type: str, entry: dict[str, Any]) -> None:
    resource = _example(res_type)
    url = f"/fhir/{res_type}/{resource['id']}"
    # updateCreate: at an id of the organisation's own.
    assert entry["updateCreate"] is True
    created = client.put(url, json=resource)
    assert created.status_code == 201, (res_type, created.text)
    # read, and conditionalRead not-match.
    assert entry["conditionalRead"] == "not-match"
    read = client.get(url)
    assert read.status_code == 200
    assert client.get(url, headers={"If-None-Match": read.headers["etag"]}).status_code == 304
    # update, versioned: a stale If-Match is refused.
    assert entry["versioning"] == "versioned-update"
    assert client.put(url, json=resource, headers={"If-Match": 'W/"1"'}).status_code == 200
    assert client.put(url, json=resource, headers={"If-Match": 'W/"1"'}).status_code == 412
    # patch.
    patched = client.patch(
        url,
        content=json.dumps([{"op": "add", "path": "/language", "value": "en-GB"}]),
        headers={"Content-Type": PATCH},
    )
    assert patched.status_code == 200, (res_type, patched.text)
    # vread and history (readHistory).
    assert entry["readHistory"] is True
    assert client.get(f"{url}/_history/1").status_code == 200
    assert len(client.get(f"{url}/_history").json()["entry"]) == 3
    assert client.get(f"/fhir/{res_type}/_history?_count=1").status_code == 200
    # create, and conditionalCreate.
    assert entry["conditionalCreate"] is True
    fresh = {k: v for k, v in resource.items() if k != "id"}
    made = client.post(f"/fhir/{res_type}", json=fresh)
    assert made.status_code == 201, (res_type, made.text)
    again = client.post(
        f"/fhir/{res_type}", json=fresh, headers={"If-None-Exist": f"_id={made.json()['id']}"}
    )
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    # conditionalUpdate.
    assert entry["conditionalUpdate"] is True
    by_criteria = client.put(f"/fhir/{res_type}?_id={resource['id']}", json=resource)
    assert by_criteria.status_code == 200, (res_type, by_criteria.text)
    # $validate, where declared.
    if any(o["name"] == "validate" for o in entry.get("operation", [])):
        checked = client.post(f"/fhir/{res_type}/$validate", json=fresh)
        assert checked.status_code == 200
        assert checked.json()["issue"][0]["severity"] == "information", checked.text
    # search-type: every parameter and include it declares is taken, strictly
    # (an unknown one would be refused by name), all in one search.
    strict = {"Prefer": "handling=strict"}
    searched = [
        (p["name"], SAMPLE[p["type"]]) for p in entry.get("searchParam", []) if p["type"] in SAMPLE
    ]
    answer = client.get(f"/fhir/{res_type}", params=searched, headers=strict)
    assert answer.status_code == 200, (res_type, answer.text)
    undeclared = [*searched, ("not-declared", "x")]
    assert client.get(f"/fhir/{res_type}", params=undeclared, headers=strict).status_code == 400
    includes = [("_include", include) for include in entry.get("searchInclude", [])]
    answer = client.get(f"/fhir/{res_type}", params=includes, headers=strict)
    assert answer.status_code == 200, (res_type, answer.text)
    # conditionalDelete: not supported, and refused.
    assert entry["conditionalDelete"] == "not-supported"
    assert client.delete(f"/fhir/{res_type}?_id={resource['id']}").status_code == 405
    # delete (the copy: what other types' examples name stays).
    copy = f"/fhir/{res_type}/{made.json()['id']}"
    assert client.delete(copy).status_code == 204
    assert client.get(copy).status_code == 410


def test_the_declared_operations_answer(store: Store, capability: dict[str, Any]) -> None:
    patient = _example("Patient")
    with make_client(store) as gp:
        assert gp.put(f"/fhir/Patient/{patient['id']}", json=patient).status_code == 201
        declared = _declared(capability)["Patient"]["operation"]
        for operation in declared:
            name = operation["name"]
            if name in ("access-report", "export"):
                continue  # for auditors and the registered practice, for analytics: below
            url = f"/fhir/Patient/{patient['id']}/${name}"
            answer = gp.post(url, json=patient) if name == "validate" else gp.get(url)
            assert answer.status_code == 200, (name, answer.text)
        assert gp.get(f"/fhir/Patient/{patient['id']}/$meta").status_code in (404, 405)
        made = gp.post("/fhir/Subscription", json=_example("Subscription"))
        assert made.status_code == 201, made.text
        for operation in _declared(capability)["Subscription"]["operation"]:
            if operation["name"] == "validate":
                continue  # above, as for every type
            answer = gp.get(f"/fhir/Subscription/{made.json()['id']}/${operation['name']}")
            assert answer.status_code == 200, (operation["name"], answer.text)
        assert gp.post("/fhir/$export").status_code in (404, 405)
    auditor = access_token(
        store, client_id="auditor", kind="auditor", org="AUD01", purpose=Purpose.HCOMPL
    )
    with make_client(store, token=auditor) as audit:
        report = audit.get(f"/fhir/Patient/{patient['id']}/$access-report")
        assert report.status_code == 200, report.text
        check = audit.post(
            "/fhir/$access-check",
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "patient",
                        "valueReference": {"reference": f"Patient/{patient['id']}"},
                    },
                    {"name": "organization", "valueString": TEST_ORG},
                    {"name": "purpose", "valueCode": "TREAT"},
                ],
            },
        )
        assert check.status_code == 200, check.text
    analytics = access_token(
        store,
        client_id="analytics",
        kind="analytics",
        org="QMJ",
        purpose=Purpose.POPHLTH,
        scopes="system/*.rs",
    )
    with make_client(store, token=analytics) as team:
        for level in ("", "Patient/"):
            started = team.get(f"/fhir/{level}$export", headers={"Prefer": "respond-async"})
            assert started.status_code == 202, started.text
    names = {o["name"] for o in capability["rest"][0]["operation"]}
    assert names == {"access-check", "ingest", "export"}
