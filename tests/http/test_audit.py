"""Every authenticated request leaves an AuditEvent in the tamper-evident log
before its response does; without one, no data leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.audit import log
from gateway.auth.tokens import Purpose
from gateway.loading import load
from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.http.test_consent import World


def entries(store: Store) -> list[dict[str, Any]]:
    rows = store.select(
        "SELECT idx, request_id, org_ods, client_id, purpose, subtype, outcome, "
        "emergency, entry FROM audit_entry ORDER BY idx",
        [],
    )
    names = [
        "idx", "request_id", "org_ods", "client_id", "purpose", "subtype", "outcome",
        "emergency", "entry",
    ]  # fmt: skip
    found = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        item["event"] = json.loads(bytes(item.pop("entry")))  # type: ignore[arg-type]
        people = store.select("SELECT patient_id FROM audit_patient WHERE idx = ?", [item["idx"]])
        item["patient_id"] = people[0][0] if len(people) == 1 else None
        found.append(item)
    return found


def details(event: dict[str, Any]) -> dict[str, str]:
    query = next(e for e in event["entity"] if e.get("role", {}).get("code") == "24")
    return {d["type"]: d["valueString"] for d in query["detail"]}


def decisions(event: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for entity in event["entity"]:
        if entity.get("description") == "consent decision":
            named = {d["type"]: d["valueString"] for d in entity["detail"]}
            found.add((named["rule"], named["decision"]))
    return found


def test_a_read_is_recorded_with_who_why_and_the_rule(world: World) -> None:
    answer = world.get("gp", f"/fhir/Condition/{world.asthma}")
    assert answer.status_code == 200
    last = entries(world.store)[-1]
    assert last["request_id"] == answer.headers["x-request-id"]
    assert (last["subtype"], last["outcome"], last["org_ods"], last["client_id"]) == (
        "read",
        "0",
        "A81001",
        "gp",
    )
    assert last["patient_id"] == world.patient
    event = last["event"]
    assert event["action"] == "R" and event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert decisions(event) == {("implied-consent", "permit")}
    assert details(event) == {"shown": "1", "withheld": "0"}


def test_withheld_results_and_their_rules_are_recorded(world: World) -> None:
    hidden = world.get("hospital", f"/fhir/Condition/{world.asthma}")
    assert hidden.status_code == 404
    last = entries(world.store)[-1]
    assert last["outcome"] == "4" and last["patient_id"] == world.patient
    assert decisions(last["event"]) == {("no-relationship", "deny")}
    world.get("gp", f"/fhir/Condition?subject=Patient/{world.patient}")
    search = entries(world.store)[-1]
    assert search["subtype"] == "search-type"
    assert details(search["event"]) == {"shown": "1", "withheld": "1"}
    assert decisions(search["event"]) == {
        ("implied-consent", "permit"),
        ("restricted-label", "deny"),
    }


def test_emergency_access_is_marked_with_its_reason(world: World) -> None:
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    last = entries(world.store)[-1]
    assert last["emergency"] in (1, True) and last["purpose"] == "ETREAT"
    client = last["event"]["agent"][0]
    assert client["extension"][0]["valueString"] == "999 call from the care home"


def test_writes_name_what_they_wrote(world: World) -> None:
    created = world.post(
        "gp",
        {
            "resourceType": "Flag",
            "status": "active",
            "code": {"text": "x"},
            "subject": world.subject,
        },
    )
    last = entries(world.store)[-1]
    assert last["subtype"] == "create" and last["event"]["action"] == "C"
    written = [e["what"]["reference"] for e in last["event"]["entity"] if "what" in e]
    assert f"Flag/{created}/_history/1" in written
    assert last["patient_id"] == world.patient


def test_the_log_verifies_and_is_checkpointed_on_shutdown(world: World) -> None:
    world.get("gp", f"/fhir/Condition/{world.asthma}")
    app = world.api.app
    signer = app.state.audit_signer  # type: ignore[attr-defined]
    world.api.__exit__(None, None, None)  # shutdown: a last checkpoint
    size, root = log.tree_head(world.store)
    notes = log.checkpoints(world.store)
    assert notes[-1][:2] == (size, root)
    assert log.verify(world.store, signer.verifier_key()).intact
    world.api.__enter__()


def test_no_audit_entry_no_data(store: Store) -> None:
    with make_client(store) as api:
        created = api.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert created.status_code == 201
        api.app.state.audit.close()  # type: ignore[attr-defined]
        answer = api.get(f"/fhir/Patient/{created.json()['id']}")
        assert answer.status_code == 500
        assert "audit" in answer.json()["issue"][0]["diagnostics"]
        assert "Patient" not in answer.text.replace("OperationOutcome", "")


def test_a_third_party_checks_proofs_with_the_public_key(world: World) -> None:
    import base64

    from gateway.audit import merkle
    from gateway.audit.checkpoint import open_note
    from gateway.auth.tokens import Purpose
    from tests.conftest import access_token
    from tests.http.test_consent import AUDITOR

    auditor = access_token(
        world.store,
        client_id="auditor",
        kind="auditor",
        org=AUDITOR,
        scopes="system/Patient.rs",
        purpose=Purpose.HCOMPL,
    )
    as_auditor = {"Authorization": f"Bearer {auditor}"}
    vkey = world.api.get("/audit/public-key", headers={"Authorization": ""}).text.strip()
    signer = world.api.app.state.audit_signer  # type: ignore[attr-defined]
    first = log.sign_checkpoint(world.store, signer)
    world.get("gp", f"/fhir/Condition/{world.asthma}")
    second = log.sign_checkpoint(world.store, signer)
    assert first and second
    old, new = open_note(first, vkey), open_note(second, vkey)
    latest = world.api.get("/audit/checkpoint").text
    assert open_note(latest, vkey).size >= new.size

    proof = world.api.get(
        f"/audit/proof/inclusion?index=1&size={new.size}", headers=as_auditor
    ).json()
    entry = world.api.get("/audit/entries/1", headers=as_auditor).json()
    assert entry["resourceType"] == "AuditEvent"
    assert merkle.verify_inclusion(
        base64.b64decode(proof["leafHash"]),
        1,
        new.size,
        [base64.b64decode(p) for p in proof["proof"]],
        new.root,
    )
    consistent = world.api.get(
        f"/audit/proof/consistency?old={old.size}&new={new.size}", headers=as_auditor
    ).json()
    assert merkle.verify_consistency(
        old.size, new.size, old.root, new.root, [base64.b64decode(p) for p in consistent["proof"]]
    )
    assert world.get("gp", "/audit/proof/inclusion?index=0&size=1").status_code == 403
    assert world.api.get("/audit/entries/0").status_code == 401
    too_far = world.api.get(f"/audit/proof/inclusion?index=0&size={10**6}", headers=as_auditor)
    assert too_far.status_code == 400


def _auditor(world: World) -> dict[str, str]:
    from gateway.auth.tokens import Purpose
    from tests.conftest import access_token
    from tests.http.test_consent import AUDITOR

    token = access_token(
        world.store,
        client_id="auditor",
        kind="auditor",
        org=AUDITOR,
        scopes="system/Patient.rs system/AuditEvent.rs system/Consent.rs",
        purpose=Purpose.HCOMPL,
    )
    return {"Authorization": f"Bearer {token}"}


def test_auditors_search_the_log(world: World) -> None:
    world.get("gp", f"/fhir/Condition/{world.asthma}")
    world.get("hospital", f"/fhir/Condition/{world.asthma}")
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    auditor = _auditor(world)

    def found(query: str) -> list[dict[str, Any]]:
        answer = world.api.get(f"/fhir/AuditEvent?{query}", headers=auditor)
        assert answer.status_code == 200, answer.text
        return [e["resource"] for e in answer.json().get("entry", [])]

    about = found(f"patient={world.patient}&subtype=read")
    assert [e["agent"][1]["who"]["identifier"]["value"] for e in about] == ["RRU", "RKE", "A81001"]
    assert [e["outcome"] for e in found(f"patient={world.patient}&agent=RKE&subtype=read")] == ["4"]
    emergency = found("emergency=true&subtype=read")
    assert (
        len(emergency) == 1 and emergency[0]["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    )
    assert len(found("purpose=ETREAT&subtype=read")) == 1
    by_client = found("agent:identifier=urn:london-care-gateway:client|gp&subtype=read")
    assert len(by_client) == 1
    assert found("date=ge2000-01-01&date=lt2000-01-02") == []
    one = world.api.get(f"/fhir/AuditEvent/{about[0]['id']}", headers=auditor).json()
    assert one == about[0]
    # Paging, newest first.
    first = world.api.get("/fhir/AuditEvent?_count=2", headers=auditor).json()
    following = next(x["url"] for x in first["link"] if x["relation"] == "next")
    second = world.api.get(following.removeprefix("http://testserver"), headers=auditor).json()
    ids = [int(e["resource"]["id"]) for e in first["entry"] + second["entry"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    # Only auditors, and the log cannot be written through the API.
    assert world.get("gp", "/fhir/AuditEvent").status_code == 403
    assert world.api.get("/fhir/AuditEvent?color=red", headers=auditor).status_code == 400
    posted = world.api.post(
        "/fhir/AuditEvent", json={"resourceType": "AuditEvent"}, headers=world.headers("gp")
    )
    assert posted.status_code == 405


def _parts(parameter: dict[str, Any]) -> dict[str, Any]:
    return {
        p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameter["part"]
    }


def test_the_access_report_tells_who_saw_the_record(world: World) -> None:
    world.get("council", f"/fhir/Condition?subject=Patient/{world.patient}")
    world.get("hospital", f"/fhir/Condition/{world.asthma}")
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    url = f"/fhir/Patient/{world.patient}/$access-report"
    report = world.get("gp", url)  # the person's own practice
    assert report.status_code == 200, report.text
    accesses = [_parts(p) for p in report.json()["parameter"] if p["name"] == "access"]
    newest = accesses[0]
    assert newest["organization"]["value"] == "RRU" and newest["emergency"] is True
    assert newest["breakGlassReason"] == "999 call from the care home"
    hospital = next(a for a in accesses if a["organization"]["value"] == "RKE")
    assert (hospital["outcome"], hospital["withheld"], hospital["rule"]) == (
        "4",
        1,
        "no-relationship",
    )
    council = next(a for a in accesses if a["organization"]["value"] == "E09000007")
    assert council["interaction"] == "search-type" and council["shown"] == 1
    summary = {
        _parts(p)["organization"]: _parts(p)
        for p in report.json()["parameter"]
        if p["name"] == "organizationSummary"
    }
    assert summary["RRU"]["emergencyAccesses"] == 1
    assert world.api.get(url, headers=_auditor(world)).status_code == 200
    for who in ("council", "hospital", "ambulance"):
        assert world.get(who, url).status_code == 403, who


def test_emergency_accesses_wait_for_review_and_the_review_is_logged(world: World) -> None:
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    world.get("gp", f"/fhir/Patient/{world.patient}")
    auditor = _auditor(world)
    queue = world.api.get("/audit/reviews", headers=auditor).json()["pending"]
    assert len(queue) == 1
    waiting = queue[0]
    assert waiting["organization"] == "RRU" and waiting["patients"] == [world.patient]
    assert waiting["reason"] == "999 call from the care home"
    url = f"/audit/reviews/{waiting['index']}"
    assert world.api.post(url, json={"note": ""}, headers=auditor).status_code == 400
    done = world.api.post(url, json={"note": "cardiac arrest confirmed"}, headers=auditor)
    assert done.status_code == 200, done.text
    assert world.api.get("/audit/reviews", headers=auditor).json()["pending"] == []
    assert world.api.post(url, json={"note": "again"}, headers=auditor).status_code == 409
    logged = world.api.get(f"/fhir/AuditEvent/{done.json()['reviewEntry']}", headers=auditor)
    assert logged.json()["outcomeDesc"] == "cardiac arrest confirmed"
    assert world.get("gp", "/audit/reviews").status_code == 403
    not_emergency = world.api.post("/audit/reviews/0", json={"note": "x"}, headers=auditor)
    assert not_emergency.status_code == 404


def test_a_consent_that_cannot_be_applied_alerts_the_privacy_officer(world: World) -> None:
    """Its actor's Organization is deleted: the GP's next read is withheld,
    and that request waits in the review queue."""
    from tests.http.test_consent import consent_naming_an_organisation

    council = consent_naming_an_organisation(world)
    world.api.delete(f"/fhir/Organization/{council}", headers=world.headers("home"))
    assert world.get("gp", f"/fhir/Condition/{world.asthma}").status_code == 404
    queue = world.api.get("/audit/reviews", headers=_auditor(world)).json()["pending"]
    assert [item["why"] for item in queue] == ["consent cannot be applied"]
    assert queue[0]["organization"] == "A81001" and queue[0]["patients"] == [world.patient]


def test_the_access_report_names_organisations_from_the_directory(
    world: World, tmp_path: Path
) -> None:
    """An organisation the directory knows reads by the directory's name;
    one it does not know keeps the name its access was logged with."""
    directory = tmp_path / "organisations.csv"
    directory.write_text(
        "ods_code,name,kind,address\nRKE,Whittington Health (directory),hospital,\n",
        encoding="utf-8",
    )
    assert load(world.store, "organisations", "X9P01", [directory]).loaded == 1
    world.get("hospital", f"/fhir/Condition/{world.asthma}")
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    report = world.get("gp", f"/fhir/Patient/{world.patient}/$access-report").json()
    names = {
        _parts(p)["organization"]: _parts(p)["organizationName"]
        for p in report["parameter"]
        if p["name"] == "organizationSummary"
    }
    assert names["RKE"] == "Whittington Health (directory)"
    assert names["RRU"] and names["RRU"] != "RRU"


def test_what_is_not_a_fhir_resource_is_not_sent_as_one(world: World) -> None:
    token = access_token(
        world.store, client_id="auditor", kind="auditor", org="AUD01", purpose=Purpose.HCOMPL
    )
    headers = {"Authorization": f"Bearer {token}"}
    world.get("gp", f"/fhir/Condition/{world.asthma}")
    for path in ("/audit/reviews", "/audit/entries/0", "/audit/proof/inclusion?index=0&size=1"):
        answer = world.api.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), path
    event = world.api.get("/fhir/AuditEvent/0", headers=headers)
    assert event.headers["content-type"].startswith("application/fhir+json")
