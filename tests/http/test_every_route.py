"""Every route the application registers is accounted for: each one that
reads or changes a person's data goes through the request's repository, is
decided by consent and leaves an audit entry with the interaction's subtype,
the people it touched and the versions it wrote. A route added without a
probe here fails ``test_every_route_is_walked``: say what its audit entry
must show, or why it touches no one's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from gateway.auth.tokens import Purpose
from gateway.documents.signature import load_or_create_document_key
from tests.conftest import TEST_DOCUMENT_KEY, access_token
from tests.http.test_audit import entries
from tests.http.test_consent import ACT, HOME, SNOMED, World

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Routes that touch no one's data, and why. Each is covered by its own tests.
NO_PERSONS = {
    ("GET", "/fhir/metadata"): "the CapabilityStatement: public",
    ("GET", "/fhir/.well-known/smart-configuration"): "SMART discovery: public",
    ("GET", "/.well-known/smart-configuration"): "SMART discovery: public",
    ("POST", "/auth/token"): "the token endpoint: its own audit entry (test_auth)",
    ("GET", "/audit/public-key"): "the log's public key: public",
    ("GET", "/audit/checkpoint"): "the log's latest signed head: public",
    ("GET", "/documents/jwks.json"): "the document signing keys: public",
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness",
    ("GET", "/metrics"): "Prometheus metrics: counts by route, rule and status, no one's data",
    ("GET", "/console/login"): "the console's sign-in page",
    ("POST", "/console/logout"): "the console's sign-out",
    ("GET", "/console/signed-out"): "the console's signed-out page",
    ("GET", "/fhir/Subscription/{res_id:fhir_id}/$status"): (
        "a Subscription's delivery state: its subscriber's alone, no one's record "
        "(test_notifications)"
    ),
    ("POST", "/fhir/Subscription/{res_id:fhir_id}/$status"): "as GET",
    # Bulk export: asking for one, its status and its files are the export's
    # own (audited as requests); the people it writes of are named in
    # entries of its own when it completes (test_bulk_export).
    ("GET", "/fhir/$export"): "an export accepted, nothing read yet",
    ("GET", "/fhir/{level:patient_level}/$export"): "as GET /fhir/$export",
    ("GET", "/fhir/Group/{res_id:fhir_id}/$export"): (
        "as GET /fhir/$export, of the requester's own Group (read, and audited as a read)"
    ),
    ("GET", "/fhir/$export-status/{job_id:export_id}"): "an export's progress or manifest",
    ("DELETE", "/fhir/$export-status/{job_id:export_id}"): "an export cancelled",
    ("GET", "/fhir/$export-file/{job_id:export_id}/{name:export_file}"): (
        "a pseudonymised file whose people the export's own entries name"
    ),
}
# Views of the audit log itself, for auditors only (HCOMPL, or a console
# session): audited, and tested with the log (test_audit, test_console).
LOG_VIEWS = {
    ("GET", "/audit/entries/{index:int}"),
    ("GET", "/audit/proof/inclusion"),
    ("GET", "/audit/proof/consistency"),
    ("GET", "/audit/reviews"),
    ("POST", "/audit/reviews/{index:int}"),
    ("GET", "/console"),
    ("GET", "/console/reviews"),
    ("POST", "/console/reviews/{index:int}"),
    ("GET", "/console/people/{patient_id}"),
    ("GET", "/console/verify"),
    ("POST", "/console/verify"),
}


@dataclass
class Probe:
    """One request on a route, and what its audit entry must show."""

    subtype: str
    send: Callable[[World], httpx.Response]
    status: int = 200
    # Versions the entry must name as written (``Type/id/_history/n``
    # prefixes: the id is not known before the request).
    wrote: list[str] = field(default_factory=list)
    # Whether consent decided something the requester was shown or changed
    # (not so for a create, nor for what answers of the log or of another
    # organisation's view: the access report, $access-check).
    decides: bool = True


def _json(answer: httpx.Response) -> Any:
    return answer.json()


def _condition(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": world.subject,
        "code": {"coding": [{"system": SNOMED, "code": "38341003"}], "text": "Hypertension"},
        "onsetDateTime": "2024-02-01",
        **extra,
    }


def _asthma(world: World) -> dict[str, Any]:
    return _json(world.get("home", f"/fhir/Condition/{world.asthma}"))  # type: ignore[no-any-return]


def _auditor(world: World) -> dict[str, str]:
    token = access_token(
        world.store, client_id="auditor", kind="auditor", org="AUD01", purpose=Purpose.HCOMPL
    )
    return {"Authorization": f"Bearer {token}"}


def _council_return(world: World) -> httpx.Response:
    # The return's own council (its rows name 713), pushing as itself.
    token = access_token(world.store, client_id="council-app", kind="council", org="713")
    body = (FIXTURES / "cld" / "return.csv").read_bytes()
    return world.api.post(
        "/fhir/$ingest",
        content=body,
        headers={"Authorization": f"Bearer {token}", "content-type": "text/csv"},
    )


def _events(world: World, method: str) -> httpx.Response:
    """The GP's pull subscription to admissions, told of one of the person's."""
    from gateway.delivery.worker import NotificationWorker
    from tests.http.test_notifications import subscription

    sub = world.post("gp", subscription("admission", None))
    world.post(
        "hospital",
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": ACT, "code": "IMP"},
            "subject": world.subject,
        },
    )
    worker = NotificationWorker(world.store, load_or_create_document_key(Path(TEST_DOCUMENT_KEY)))
    worker.run_once()
    worker.stop()
    url = f"/fhir/Subscription/{sub}/$events"
    if method == "GET":
        return world.get("gp", url + "?content=full-resource")
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "eventsSinceNumber", "valueString": "1"}],
    }
    return world.api.post(url, json=body, headers=world.headers("gp"))


def _fresh_condition(world: World) -> str:
    return world.post("home", _condition(world))


PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}"): Probe(
        "read", lambda w: w.get("gp", f"/fhir/Condition/{w.asthma}")
    ),
    ("PUT", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}"): Probe(
        "update",
        lambda w: w.api.put(
            f"/fhir/Condition/{w.asthma}",
            json={**_asthma(w), "onsetDateTime": "2024-01-11"},
            headers=w.headers("home"),
        ),
        wrote=["Condition/{asthma}/_history/2"],
    ),
    ("PATCH", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}"): Probe(
        "patch",
        lambda w: w.api.patch(
            f"/fhir/Condition/{w.asthma}",
            content=b'[{"op": "replace", "path": "/onsetDateTime", "value": "2024-01-13"}]',
            headers={**w.headers("home"), "Content-Type": "application/json-patch+json"},
        ),
        wrote=["Condition/{asthma}/_history/2"],
    ),
    ("PATCH", "/fhir/{res_type:fhir_type}"): Probe(
        "patch",
        lambda w: w.api.patch(
            f"/fhir/Condition?_id={w.asthma}",
            content=b'[{"op": "replace", "path": "/onsetDateTime", "value": "2024-01-14"}]',
            headers={**w.headers("home"), "Content-Type": "application/json-patch+json"},
        ),
        wrote=["Condition/{asthma}/_history/2"],
    ),
    ("POST", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}/$validate"): Probe(
        "operation",
        lambda w: w.api.post(
            f"/fhir/Condition/{w.asthma}/$validate?mode=delete", headers=w.headers("home")
        ),
    ),
    ("POST", "/fhir/{res_type:fhir_type}/$validate"): Probe(
        "operation",
        lambda w: w.api.post(
            "/fhir/Condition/$validate", json=_condition(w), headers=w.headers("home")
        ),
        decides=False,
    ),
    ("DELETE", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}"): Probe(
        "delete",
        lambda w: w.api.delete(f"/fhir/Condition/{w.asthma}", headers=w.headers("home")),
        status=204,
        wrote=["Condition/{asthma}/_history/2"],
    ),
    ("GET", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}/_history/{version_id}"): Probe(
        "vread", lambda w: w.get("gp", f"/fhir/Condition/{w.asthma}/_history/1")
    ),
    ("GET", "/fhir/{res_type:fhir_type}/{res_id:fhir_id}/_history"): Probe(
        "history-instance", lambda w: w.get("gp", f"/fhir/Condition/{w.asthma}/_history")
    ),
    ("GET", "/fhir/Patient/{res_id:fhir_id}/$everything"): Probe(
        "operation", lambda w: w.get("gp", f"/fhir/Patient/{w.patient}/$everything")
    ),
    ("GET", "/fhir/Patient/{res_id:fhir_id}/$access-report"): Probe(
        "operation",
        lambda w: w.get("gp", f"/fhir/Patient/{w.patient}/$access-report"),
        decides=False,
    ),
    ("GET", "/fhir/Patient/{res_id:fhir_id}/${operation:document_operation}"): Probe(
        "operation", lambda w: w.get("gp", f"/fhir/Patient/{w.patient}/$summary")
    ),
    ("POST", "/fhir/Patient/{res_id:fhir_id}/${operation:document_operation}"): Probe(
        "operation",
        lambda w: w.api.post(f"/fhir/Patient/{w.patient}/$red-bag", headers=w.headers("gp")),
    ),
    ("GET", "/fhir/Patient/${operation:document_operation}"): Probe(
        "operation", lambda w: w.get("gp", "/fhir/Patient/$summary?identifier=9990000018")
    ),
    ("POST", "/fhir/Patient/${operation:document_operation}"): Probe(
        "operation",
        lambda w: w.api.post(
            "/fhir/Patient/$summary?identifier=9990000018", headers=w.headers("gp")
        ),
    ),
    ("POST", "/fhir/{res_type:fhir_type}"): Probe(
        "create",
        lambda w: w.api.post("/fhir/Condition", json=_condition(w), headers=w.headers("home")),
        status=201,
        wrote=["Condition/"],
        decides=False,
    ),
    ("PUT", "/fhir/{res_type:fhir_type}"): Probe(
        "update",
        lambda w: w.api.put(
            f"/fhir/Condition?_id={w.asthma}",
            json={**_asthma(w), "onsetDateTime": "2024-01-12"},
            headers=w.headers("home"),
        ),
        wrote=["Condition/{asthma}/_history/2"],
    ),
    ("GET", "/fhir/{res_type:fhir_type}"): Probe(
        "search-type", lambda w: w.get("gp", f"/fhir/Condition?subject=Patient/{w.patient}")
    ),
    ("POST", "/fhir/{res_type:fhir_type}/_search"): Probe(
        "search-type",
        lambda w: w.api.post(
            "/fhir/Condition/_search",
            content=f"subject=Patient/{w.patient}",
            headers={**w.headers("gp"), "content-type": "application/x-www-form-urlencoded"},
        ),
    ),
    ("GET", "/fhir/{owner_type:fhir_type}/{owner_id:fhir_id}/{res_type:fhir_type}"): Probe(
        "search-type", lambda w: w.get("gp", f"/fhir/Patient/{w.patient}/Condition")
    ),
    ("GET", "/fhir/{res_type:fhir_type}/_history"): Probe(
        "history-type", lambda w: w.get("gp", "/fhir/Condition/_history")
    ),
    ("POST", "/fhir"): Probe(
        "batch",
        lambda w: w.api.post(
            "/fhir",
            json={
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": f"Condition/{w.asthma}"}}],
            },
            headers=w.headers("gp"),
        ),
    ),
    ("POST", "/fhir/"): Probe(
        "transaction",
        lambda w: w.api.post(
            "/fhir/",
            json={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {**_asthma(w), "onsetDateTime": "2024-01-13"},
                        "request": {"method": "PUT", "url": f"Condition/{w.asthma}"},
                    },
                    {
                        "resource": _condition(w),
                        "request": {"method": "POST", "url": "Condition"},
                    },
                ],
            },
            headers=w.headers("home"),
        ),
        wrote=["Condition/{asthma}/_history/2", "Condition/"],
    ),
    ("GET", "/fhir"): Probe(
        "search-system", lambda w: w.get("gp", f"/fhir?_type=Condition&_id={w.asthma}")
    ),
    ("GET", "/fhir/"): Probe(
        "search-system", lambda w: w.get("gp", f"/fhir/?_type=Condition&_id={w.asthma}")
    ),
    ("GET", "/fhir/_history"): Probe("history-system", lambda w: w.get("gp", "/fhir/_history")),
    ("POST", "/fhir/$access-check"): Probe(
        "operation",
        lambda w: w.api.post(
            "/fhir/$access-check",
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "patient", "valueReference": {"reference": f"Patient/{w.patient}"}},
                    {
                        "name": "organization",
                        "valueIdentifier": {
                            "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                            "value": HOME,
                        },
                    },
                    {"name": "kind", "valueCode": "care-home"},
                ],
            },
            headers=_auditor(w),
        ),
        decides=False,
    ),
    ("POST", "/fhir/$ingest"): Probe("operation", _council_return, wrote=["Patient/"]),
    ("GET", "/fhir/Subscription/{res_id:fhir_id}/$events"): Probe(
        "operation", lambda w: _events(w, "GET")
    ),
    ("POST", "/fhir/Subscription/{res_id:fhir_id}/$events"): Probe(
        "operation", lambda w: _events(w, "POST")
    ),
}


def _walked(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the application routes, HEAD aside (Starlette
    answers it with the GET handler)."""
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r} is not a plain route: walk it too"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_every_route_is_walked(world: World) -> None:
    routed = _walked(world.api.app)
    accounted = set(PROBES) | set(NO_PERSONS) | LOG_VIEWS
    assert routed - accounted == set(), "a route with no probe: say what its audit entry shows"
    assert accounted - routed == set(), "a probe for a route that is gone"


@pytest.mark.parametrize("route", sorted(PROBES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_route_leaves_an_entry_naming_its_people_and_versions(
    world: World, route: tuple[str, str]
) -> None:
    probe = PROBES[route]
    answer = probe.send(world)
    assert answer.status_code == probe.status, answer.text
    rid = answer.headers["x-request-id"]
    (entry,) = [e for e in entries(world.store) if e["request_id"] == rid]
    assert entry["subtype"] == probe.subtype
    assert entry["outcome"] == "0"
    people = {
        row[0]
        for row in world.store.select(
            "SELECT patient_id FROM audit_patient WHERE idx = ?", [entry["idx"]]
        )
    }
    if route[1] == "/fhir/$ingest":
        assert people, "a push names the people its records are about"
    else:
        assert world.patient in people
    named = [
        e["what"]["reference"]
        for e in entry["event"]["entity"]
        if "_history/" in str(e.get("what", {}).get("reference", ""))
    ]
    for wanted in probe.wrote:
        prefix = wanted.format(asthma=world.asthma)
        assert any(reference.startswith(prefix) for reference in named), (prefix, named)
    decided = [e for e in entry["event"]["entity"] if e.get("description") == "consent decision"]
    assert bool(decided) == probe.decides, "consent decides what is shown or changed"


def test_a_request_can_write_only_through_its_repository() -> None:
    """The FHIR routes reach resources only through the request's
    repository: ``gateway.http.routes`` imports no store, no consent layer
    and no interaction that reads or writes."""
    import ast

    source = Path(__file__).resolve().parents[2] / "gateway" / "http" / "routes.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    reaching = {
        name
        for name in imported
        if name.startswith(("gateway.store", "gateway.access", "gateway.loading", "consent."))
        or name
        in (
            "gateway.interactions.read",
            "gateway.interactions.search",
            "gateway.interactions.history",
        )
    }
    assert reaching == set()
