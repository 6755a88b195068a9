"""Bulk export for population health, end to end on each store: an ICB's
analytics client kicks off ``$export`` (Bulk Data v2, asynchronous), polls
its status, fetches its NDJSON files and may cancel it; the export worker
runs it as the consent engine's secondary-use rules decide, person by
person, and pseudonymises what leaves. Opted-out people (type 1 or the
National Data Opt-out) and restricted data never appear; a withdrawal puts
the person back in the next export; every person exported is named in the
audit log and their access report; another client's export answers as one
there never was, byte for byte."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import staging
from gateway.audit.log import verify
from gateway.auth.tokens import Purpose
from gateway.export.worker import ExportWorker
from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.support.consents import privacy_consent

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
GP, ICB, OTHER_ICB = "A81001", "QMJ", "QRV"
OPTED_OUT, WITHDRAWN = "827241000000103", "827261000000102"
NUMBERS = {"ada": "9990000018", "bo": "9990000026", "cy": "9990000034"}
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """Three people registered with one GP, who writes their records: Ada
    (asthma, a depression labelled PSY), Bo (a type 1 opt-out), Cy (on the
    National Data Opt-out list once it is loaded); two ICBs' analytics
    clients and the GP's own client."""

    def __init__(self, store: Store, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self.clock = Clock()
        self.tokens = {
            "gp": access_token(store, client_id="gp", kind="gp-practice", org=GP),
            "icb": access_token(
                store,
                client_id="icb",
                kind="analytics",
                org=ICB,
                purpose=Purpose.POPHLTH,
                scopes="system/*.rs system/Group.cruds",
            ),
            "other": access_token(
                store,
                client_id="other",
                kind="analytics",
                org=OTHER_ICB,
                purpose=Purpose.POPHLTH,
                scopes="system/*.rs",
            ),
            "auditor": access_token(
                store, client_id="auditor", kind="auditor", org="X26", purpose=Purpose.HCOMPL
            ),
        }
        self.api = make_client(store, token=None, export_dir=str(directory), export_expiry_s=3600)
        self.api.__enter__()
        self.worker = ExportWorker(store, directory, expiry_s=3600, clock=self.clock)
        self.people = {name: self.patient(name, number) for name, number in NUMBERS.items()}
        self.asthma = self.condition("ada", "195967001", "Asthma")
        self.depression = self.condition("ada", "35489007", "Depression", psy=True)
        self.opt_out = self.observation("bo", OPTED_OUT, "2024-01-01")
        self.condition("bo", "38341003", "Hypertension")
        self.condition("cy", "44054006", "Diabetes")

    def close(self) -> None:
        self.api.__exit__(None, None, None)

    def headers(self, who: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **(extra or {})}

    def post(self, resource: dict[str, Any]) -> str:
        answer = self.api.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=self.headers("gp")
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def patient(self, name: str, number: str) -> str:
        return self.post(
            {
                "resourceType": "Patient",
                "identifier": [{"system": NHS, "value": number}],
                "name": [{"family": f"{name.title()}surname", "given": [name.title()]}],
                "birthDate": "1950-07-14",
                "address": [{"line": [f"1 {name.title()} Street"], "postalCode": "NW1 2DB"}],
                "telecom": [{"system": "phone", "value": "020 7946 0000"}],
                "generalPractitioner": [{"identifier": {"system": ODS, "value": GP}}],
            }
        )

    def condition(self, who: str, code: str, text: str, psy: bool = False) -> str:
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{self.people[who]}"},
            "code": {"coding": [{"system": SNOMED, "code": code}], "text": text},
            "onsetDateTime": "2024-01-10",
            "note": [{"text": f"{who.title()} told me about it"}],
        }
        if psy:
            resource["meta"] = {"security": [{"system": ACT, "code": "PSY"}]}
        return self.post(resource)

    def observation(self, who: str, code: str, when: str) -> str:
        return self.post(
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": f"Patient/{self.people[who]}"},
                "code": {"coding": [{"system": SNOMED, "code": code}]},
                "effectiveDateTime": when,
            }
        )

    def get_as(self, who: str, url: str) -> Any:
        return self.api.get(url, headers=self.headers(who))

    def kick_off(self, who: str = "icb", query: str = "", level: str = "") -> Any:
        return self.api.get(f"/fhir/{level}$export{query}", headers=self.headers(who, ASYNC))

    def export(self, query: str = "", level: str = "") -> tuple[str, dict[str, Any]]:
        """Kick off, run and poll an export to its end: its status path and manifest."""
        started = self.kick_off(query=query, level=level)
        assert started.status_code == 202, started.text
        status = started.headers["Content-Location"].split("/fhir", 1)[1]
        assert self.worker.run_once() is not None
        done = self.api.get(f"/fhir{status}", headers=self.headers("icb"))
        assert done.status_code == 200, done.text
        return status, done.json()

    def files(self, manifest: dict[str, Any], who: str = "icb") -> dict[str, list[dict[str, Any]]]:
        """Every resource in the export, by type, fetched as a client does."""
        found: dict[str, list[dict[str, Any]]] = {}
        for output in manifest["output"]:
            path = output["url"].split("/fhir", 1)[1]
            answer = self.api.get(
                f"/fhir{path}", headers=self.headers(who, {"Accept": "application/fhir+ndjson"})
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/fhir+ndjson")
            lines = [json.loads(line) for line in answer.text.splitlines()]
            assert len(lines) == output["count"]
            found.setdefault(output["type"], []).extend(lines)
        return found

    def text_of(self, manifest: dict[str, Any]) -> str:
        return json.dumps(self.files(manifest))


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Iterator[World]:
    made = World(store, tmp_path / "exports")
    yield made
    made.close()


def _code(answer: Any) -> str:
    """The gateway's message code an OperationOutcome answer carries."""
    return str(answer.json()["issue"][0]["details"]["text"].split(":")[0])


def _pseudonym_of(found: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {patient["id"] for patient in found.get("Patient", [])}


def test_the_asynchronous_pattern_end_to_end(world: World) -> None:
    started = world.kick_off()
    assert started.status_code == 202
    location = started.headers["Content-Location"]
    assert re.fullmatch(r"https?://[^/]+/fhir/\$export-status/[0-9a-f]{32}", location)
    status = location.split("/fhir", 1)[1]
    waiting = world.api.get(f"/fhir{status}", headers=world.headers("icb"))
    assert waiting.status_code == 202
    assert waiting.headers["Retry-After"]
    assert waiting.headers["X-Progress"]
    world.worker.run_once()
    done = world.api.get(f"/fhir{status}", headers=world.headers("icb"))
    assert done.status_code == 200
    assert done.headers["Expires"].endswith("GMT")
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/$export")
    assert manifest["error"] == []
    found = world.files(manifest)
    # Ada and Cy are in; Bo opted out of secondary use in the GP record.
    assert len(found["Patient"]) == 2
    conditions = found["Condition"]
    assert sorted(c["code"]["coding"][0]["code"] for c in conditions) == ["195967001", "44054006"]
    # Pseudonymised: the ids and references are keyed pseudonyms.
    people = _pseudonym_of(found)
    assert {c["subject"]["reference"].removeprefix("Patient/") for c in conditions} == people
    assert not set(world.people.values()) & people


def test_nothing_identifying_and_nothing_restricted_leaves(world: World) -> None:
    _, manifest = world.export()
    text = world.text_of(manifest)
    for forbidden in [
        *NUMBERS.values(),
        *world.people.values(),
        "Adasurname",
        "Ada Street",
        "NW1 2DB",
        "020 7946",
        "told me about it",
        "Depression",
        "35489007",
        world.depression,
        world.asthma,
    ]:
        assert forbidden not in text, forbidden
    found = world.files(manifest)
    for patient in found["Patient"]:
        assert patient["birthDate"] == "1950-07"
        assert patient["address"] == [{"postalCode": "NW1"}]


def test_direct_care_clients_cannot_export_and_export_needs_async(world: World) -> None:
    refused = world.kick_off("gp")
    assert refused.status_code == 403
    assert _code(refused) == "GW-0616"
    plain = world.api.get("/fhir/$export", headers=world.headers("icb"))
    assert plain.status_code == 400
    for query, code in [
        ("?_type=Nonsense", "GW-0705"),
        ("?_type=AuditEvent", "GW-0706"),
        ("?_since=yesterday", "GW-0708"),
        ("?_outputFormat=text/csv", "GW-0703"),
        ("?_type=Condition&_typeFilter=Observation%3Fcode%3Dx", "GW-0709"),
        ("?_typeFilter=Condition%3Fnonsense%3D1", "GW-0321"),
        ("?_type=Condition&_typeFilter=Condition%3F_sort%3Ddate", "GW-0709"),
        ("?_elements=9bad", "GW-0710"),
        ("?project=Not%20A%20Name", "GW-0704"),
        ("?patient=Patient/1", "GW-0701"),
    ]:
        answer = world.kick_off(query=query)
        assert answer.status_code == 400, (query, answer.text)
        assert _code(answer) == code, query
    assert world.worker.run_once() is None  # nothing was accepted


def test_another_clients_export_answers_as_one_there_never_was(world: World) -> None:
    status, manifest = world.export()
    job_id = status.rsplit("/", 1)[1]
    never = "0" * 32
    for path in [status, manifest["output"][0]["url"].split("/fhir", 1)[1]]:
        theirs = world.api.get(f"/fhir{path}", headers=world.headers("other"))
        missing = world.api.get(
            f"/fhir{path.replace(job_id, never)}", headers=world.headers("other")
        )
        assert theirs.status_code == missing.status_code == 404
        assert theirs.content.replace(job_id.encode(), never.encode()) == missing.content
    cancel = world.api.delete(f"/fhir{status}", headers=world.headers("other"))
    assert cancel.status_code == 404
    assert world.api.get(f"/fhir{status}", headers=world.headers("icb")).status_code == 200


def test_cancel_and_expiry(world: World) -> None:
    started = world.kick_off()
    status = started.headers["Content-Location"].split("/fhir", 1)[1]
    job_id = status.rsplit("/", 1)[1]
    assert world.api.delete(f"/fhir{status}", headers=world.headers("icb")).status_code == 202
    assert world.api.get(f"/fhir{status}", headers=world.headers("icb")).status_code == 404
    assert world.worker.run_once() is None  # a cancelled export is never run
    assert not (world.directory / job_id).exists()

    status, manifest = world.export()
    job_id = status.rsplit("/", 1)[1]
    assert (world.directory / job_id).is_dir()
    world.clock.now += 3601
    file_path = manifest["output"][0]["url"].split("/fhir", 1)[1]
    assert world.worker.clean_up() == 1
    assert not (world.directory / job_id).exists()
    assert world.api.get(f"/fhir{status}", headers=world.headers("icb")).status_code == 404
    assert world.api.get(f"/fhir{file_path}", headers=world.headers("icb")).status_code == 404


def test_a_completed_export_is_cancelled_with_its_files(world: World) -> None:
    status, _ = world.export()
    job_id = status.rsplit("/", 1)[1]
    assert world.api.delete(f"/fhir{status}", headers=world.headers("icb")).status_code == 202
    world.worker.clean_up()
    assert not (world.directory / job_id).exists()


def test_opt_outs_withdrawal_and_the_national_list(world: World, tmp_path: Path) -> None:
    _, first = world.export()
    assert len(world.files(first)["Patient"]) == 2
    # Bo withdraws the type 1 opt-out: the next export has Bo again.
    world.observation("bo", WITHDRAWN, "2025-03-01")
    _, second = world.export()
    assert len(world.files(second)["Patient"]) == 3
    # Cy is on the National Data Opt-out list: left out entirely.
    listed = tmp_path / "opt-outs.txt"
    listed.write_text(NUMBERS["cy"] + "\n")
    from gateway.access import optouts

    optouts.replace(world.store, [NUMBERS["cy"]])
    _, third = world.export()
    found = world.files(third)
    assert len(found["Patient"]) == 2
    assert "44054006" not in json.dumps(found)


def test_a_consent_denying_the_purpose_leaves_the_person_out(world: World) -> None:
    reason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    world.post(
        privacy_consent(
            {"reference": f"Patient/{world.people['ada']}"},
            {
                "type": "permit",
                "provision": [{"type": "deny", "purpose": [{"system": reason, "code": "POPHLTH"}]}],
            },
        )
    )
    _, manifest = world.export()
    found = world.files(manifest)
    assert len(found["Patient"]) == 1
    assert "195967001" not in json.dumps(found)


def test_pseudonyms_are_stable_within_a_project_and_differ_across_projects(world: World) -> None:
    runs = [world.export(query)[1] for query in ("", "", "?project=falls", "?project=falls")]
    people = [_pseudonym_of(world.files(manifest)) for manifest in runs]
    assert people[0] == people[1]
    assert people[2] == people[3]
    assert not people[0] & people[2]
    # Another organisation naming the same project gets keys of its own.
    started = world.kick_off("other", "?project=falls")
    status = started.headers["Content-Location"].split("/fhir", 1)[1]
    world.worker.run_once()
    theirs = world.api.get(f"/fhir{status}", headers=world.headers("other")).json()
    assert not _pseudonym_of(world.files(theirs, "other")) & people[2]


def test_type_since_type_filter_and_elements(world: World) -> None:
    _, only = world.export("?_type=Condition")
    assert {o["type"] for o in only["output"]} == {"Condition"}
    _, filtered = world.export(
        "?_type=Condition,Observation&_typeFilter=Condition%3Fcode%3D195967001"
    )
    found = world.files(filtered)
    assert [c["code"]["coding"][0]["code"] for c in found["Condition"]] == ["195967001"]
    _, later = world.export("?_since=2999-01-01T00:00:00Z")
    assert later["output"] == []
    _, slim = world.export("?_type=Patient&_elements=gender")
    for patient in world.files(slim)["Patient"]:
        assert set(patient) <= {"resourceType", "id", "meta", "gender"}
        assert "birthDate" not in patient
        assert any(t["code"] == "SUBSETTED" for t in patient["meta"]["tag"])


def test_patient_level_export_leaves_out_no_ones_records(world: World) -> None:
    world.post(
        {
            "resourceType": "Organization",
            "identifier": [{"system": ODS, "value": "Q99"}],
            "name": "A council",
        }
    )
    _, system = world.export()
    _, patients = world.export(level="Patient/")
    assert "Organization" in {o["type"] for o in system["output"]}
    assert "Organization" not in {o["type"] for o in patients["output"]}


def test_every_person_exported_is_audited_and_in_their_access_report(world: World) -> None:
    status, _ = world.export()
    job_id = status.rsplit("/", 1)[1]
    staging.sequence_now(world.store)
    rows = world.store.select(
        "SELECT p.patient_id FROM audit_entry e JOIN audit_patient p ON p.idx = e.idx "
        "WHERE e.subtype = 'bulk-export'",
        [],
    )
    assert sorted(str(r[0]) for r in rows) == sorted([world.people["ada"], world.people["cy"]])
    report = world.api.get(
        f"/fhir/Patient/{world.people['ada']}/$access-report", headers=world.headers("auditor")
    ).json()
    exports = [
        part["valueString"]
        for parameter in report["parameter"]
        if parameter["name"] == "access"
        for part in parameter["part"]
        if part["name"] == "export"
    ]
    assert exports == [f"included in population health export {job_id}"]
    bo = world.api.get(
        f"/fhir/Patient/{world.people['bo']}/$access-report", headers=world.headers("auditor")
    ).json()
    assert "export" not in json.dumps(bo)
    signer = world.api.app.state.audit_signer  # type: ignore[attr-defined]
    assert verify(world.store, signer.verifier_key()).intact


def test_an_export_fetched_as_an_analytics_team_fetches_it(world: World, tmp_path: Path) -> None:
    """``gateway analytics export``'s client: kick off, poll while a worker
    runs it, download every file and the manifest beside them."""
    from gateway.export.fetch import ExportClientError, fetch_export

    runner = ExportWorker(world.store, world.directory, expiry_s=3600, poll_s=0.05)
    runner.start()
    try:
        said: list[str] = []
        manifest = fetch_export(
            "http://testserver/fhir",
            lambda: world.tokens["icb"],
            tmp_path / "fetched",
            [("_type", "Patient,Condition")],
            say=said.append,
            poll_s=0.05,
            http=world.api,
        )
    finally:
        runner.stop()
    files = sorted(p.name for p in (tmp_path / "fetched").iterdir())
    assert files == ["Condition-1.ndjson", "Patient-1.ndjson", "manifest.json"]
    assert json.loads((tmp_path / "fetched" / "manifest.json").read_text()) == manifest
    assert said[0].startswith("export accepted: http://testserver/fhir/$export-status/")
    with pytest.raises(ExportClientError, match="403"):
        fetch_export("http://testserver/fhir", lambda: world.tokens["gp"], tmp_path, http=world.api)


def test_a_group_export_covers_its_active_members_alone(world: World) -> None:
    """An ICB's cohort, named by NHS number or Patient id: its own, read by
    no one else; its export holds its active members not opted out."""
    cohort = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"identifier": {"system": NHS, "value": NUMBERS["ada"]}}},
            {"entity": {"reference": f"Patient/{world.people['bo']}"}},  # opted out
            {"entity": {"identifier": {"system": NHS, "value": NUMBERS["cy"]}}, "inactive": True},
        ],
    }
    made = world.api.post("/fhir/Group", json=cohort, headers=world.headers("icb"))
    assert made.status_code == 201, made.text
    group = made.json()["id"]
    assert world.api.get(f"/fhir/Group/{group}", headers=world.headers("icb")).status_code == 200
    never = "QMJ-never-was"
    for who in ("gp", "other"):
        theirs = world.api.get(f"/fhir/Group/{group}", headers=world.headers(who))
        missing = world.api.get(f"/fhir/Group/{never}", headers=world.headers(who))
        assert theirs.status_code == missing.status_code == 404
        assert theirs.content.replace(group.encode(), never.encode()) == missing.content
    # Another ICB cannot export by it: answered as for a Group there never was.
    theirs = world.kick_off("other", level=f"Group/{group}/")
    missing = world.kick_off("other", level=f"Group/{never}/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content.replace(group.encode(), never.encode()) == missing.content
    # Still no other interaction for analytics.
    assert world.get_as("icb", "/fhir/Condition").status_code == 403
    status, manifest = world.export(level=f"Group/{group}/")
    assert manifest["request"].endswith(f"/fhir/Group/{group}/$export")
    found = world.files(manifest)
    assert len(found["Patient"]) == 1
    assert [c["code"]["coding"][0]["code"] for c in found["Condition"]] == ["195967001"]
    assert "Group" not in found
    # The Group deleted before its export runs: the export fails, saying why.
    started = world.kick_off(level=f"Group/{group}/")
    status = started.headers["Content-Location"].split("/fhir", 1)[1]
    assert world.api.delete(f"/fhir/Group/{group}", headers=world.headers("icb")).status_code == 204
    world.worker.run_once()
    failed = world.api.get(f"/fhir{status}", headers=world.headers("icb"))
    assert failed.status_code == 500
    assert "no longer there" in failed.text
    assert world.kick_off(level=f"Group/{group}/").status_code == 410  # its author knows


def test_an_analytics_team_searches_its_own_cohorts_alone(world: World) -> None:
    mine = {"resourceType": "Group", "type": "person", "actual": True, "name": "Frailty"}
    assert world.api.post("/fhir/Group", json=mine, headers=world.headers("icb")).status_code == 201
    theirs = {"resourceType": "Group", "type": "person", "actual": True, "name": "Frailty"}
    made = world.api.post("/fhir/Group", json=theirs, headers=world.headers("gp"))
    assert made.status_code == 201

    def found(who: str) -> int:
        answer = world.get_as(who, "/fhir/Group?type=person")
        assert answer.status_code == 200, answer.text
        return len(answer.json().get("entry", []))

    assert (found("icb"), found("gp"), found("other")) == (1, 1, 0)
    assert world.get_as("icb", "/fhir/Patient").status_code == 403


def test_an_export_is_run_by_one_worker_and_taken_over_when_its_worker_goes_quiet(
    world: World,
) -> None:
    """Several nodes share the jobs: one claims an export; another finds
    nothing to do until the first has said nothing for a minute, then runs
    it from the start; the first, back, finds it is no longer its own."""
    from gateway.export import jobs

    started = world.kick_off()
    status = started.headers["Content-Location"].split("/fhir", 1)[1]
    first = jobs.claim(world.store, "node-a", world.clock.now)
    assert first is not None and first.status == jobs.RUNNING
    assert jobs.claim(world.store, "node-b", world.clock.now + 30) is None
    other = ExportWorker(world.store, world.directory, expiry_s=3600, clock=world.clock)
    world.clock.now += jobs.STALE_S + 1
    assert other.run_once() is not None
    assert not jobs.still_mine(world.store, first, "node-a", world.clock.now, "back")
    done = world.api.get(f"/fhir{status}", headers=world.headers("icb"))
    assert done.status_code == 200
    assert len(world.files(done.json())["Patient"]) == 2


def test_a_file_another_node_wrote_where_this_one_cannot_reach_is_unavailable(
    world: World,
) -> None:
    status, manifest = world.export()
    job_id = status.rsplit("/", 1)[1]
    import shutil

    shutil.rmtree(world.directory / job_id)  # as seen from a node not sharing the folder
    path = manifest["output"][0]["url"].split("/fhir", 1)[1]
    answer = world.api.get(f"/fhir{path}", headers=world.headers("icb"))
    assert answer.status_code == 503
    assert _code(answer) == "GW-0723"
