"""A Group is its author organisation's alone (issue 28): a cohort, a list
of people, which the care home that wrote it reads and finds by its search
parameters; any other organisation (its members' GP among them), under
emergency access too, and an auditor, are answered as for an id where
nothing stands, and its members' records do not hold it (it is not in the
Patient compartment, as R4 would have it by ``member``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth.tokens import Purpose
from tests.conftest import access_token
from tests.http.test_consent import HOME, World
from tests.support.alike import answered_alike

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "r4" / "Group.json"
MISSING = "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _group(world: World) -> dict[str, Any]:
    """The example, naming the world's person as its one member."""
    resource: dict[str, Any] = json.loads(EXAMPLE.read_text("utf-8"))
    del resource["id"], resource["managingEntity"]
    resource["quantity"] = 1
    resource["member"] = [{"entity": world.subject}]
    return resource


@pytest.fixture
def group(world: World) -> str:
    world.tokens["auditor"] = access_token(
        world.store, client_id="auditor", kind="auditor", org="X26", purpose=Purpose.HCOMPL
    )
    return world.post("home", _group(world))


def test_its_author_reads_it_and_finds_it(world: World, group: str) -> None:
    read = world.get("home", f"/fhir/Group/{group}")
    assert read.status_code == 200, read.text
    assert read.json()["meta"]["source"] == f"urn:ods:{HOME}"
    for query in (
        "",
        f"?_id={group}",
        f"?member=Patient/{world.patient}",
        "?type=person",
        "?actual=true",
        "?value=http://snomed.info/sct|195967001",
        "?characteristic-value=http://snomed.info/sct|439401001$http://snomed.info/sct|195967001",
    ):
        assert world.ids("home", f"/fhir/Group{query}") == [group], query
    assert world.ids("home", "/fhir/Group?type=device") == []


@pytest.mark.parametrize("who", ["gp", "council", "hospital", "ambulance", "auditor"])
def test_anyone_else_is_answered_as_if_it_did_not_exist(world: World, group: str, who: str) -> None:
    """Read, vread and history; update (PUT), PATCH and DELETE: the same
    bytes as for a missing id, and the Group unchanged. A search does not
    find it."""
    api, headers = world.api, world.headers(who)
    before = world.get("home", f"/fhir/Group/{group}").content
    for tail in ("", "/_history/1", "/_history"):

        def read(res_id: str, tail: str = tail) -> httpx.Response:
            answer: httpx.Response = api.get(f"/fhir/Group/{res_id}{tail}", headers=headers)
            return answer

        assert answered_alike(read, group, MISSING).status_code == 404
    updated = answered_alike(
        lambda i: api.put(
            f"/fhir/Group/{i}", json={**_group(world), "id": i, "quantity": 2}, headers=headers
        ),
        group,
        MISSING,
    )
    patched = answered_alike(
        lambda i: api.patch(
            f"/fhir/Group/{i}",
            content=json.dumps([{"op": "replace", "path": "/quantity", "value": 2}]),
            headers={**headers, "Content-Type": "application/json-patch+json"},
        ),
        group,
        MISSING,
    )
    assert updated.status_code == patched.status_code == 404
    # DELETE is idempotent: where nothing stands it answers as if it had deleted.
    answered_alike(lambda i: api.delete(f"/fhir/Group/{i}", headers=headers), group, MISSING)
    assert world.get("home", f"/fhir/Group/{group}").content == before
    for query in ("", f"?_id={group}", f"?member=Patient/{world.patient}"):
        found = world.get(who, f"/fhir/Group{query}")
        assert found.status_code == 200, found.text
        assert found.json().get("entry", []) == [] and found.json().get("total", 0) == 0


def test_it_is_not_part_of_its_members_records(world: World, group: str) -> None:
    """The person's GP sees their record, and no Group in it."""
    everything = world.get("gp", f"/fhir/Patient/{world.patient}/$everything")
    assert everything.status_code == 200, everything.text
    types = {e["resource"]["resourceType"] for e in everything.json().get("entry", [])}
    assert "Patient" in types and "Group" not in types
    mine = world.get("home", f"/fhir/Patient/{world.patient}/$everything")
    assert "Group" not in {e["resource"]["resourceType"] for e in mine.json().get("entry", [])}
