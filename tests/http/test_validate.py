"""$validate: https://hl7.org/fhir/R4/resource-operation-validate.html. The
answer is the write's own, run and rolled back: nothing is written, and a
record the requester may not see answers as nothing there."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries
from tests.http.test_consent import World
from tests.http.test_write_leaks import _shape

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": "9990000042"}],
        "name": [{"family": "Okafor", "given": ["Ada"]}],
        "birthDate": "1941-03-02",
        **extra,
    }


def _issues(answer: Any) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    outcome: dict[str, Any] = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return list(outcome["issue"])


def _count(store: Store, res_type: str) -> int:
    rows = store.select("SELECT count(*) FROM resource_current WHERE res_type = ?", [res_type])
    return int(rows[0][0])  # type: ignore[arg-type]


def test_a_valid_resource_would_be_accepted_and_nothing_is_written(
    store: Store, client: TestClient
) -> None:
    before = _count(store, "Patient"), _count(store, "Provenance")
    issues = _issues(client.post("/fhir/Patient/$validate", json=_patient()))
    assert issues == [
        {
            "severity": "information",
            "code": "informational",
            "diagnostics": "the create would be accepted",
        }
    ]
    assert (_count(store, "Patient"), _count(store, "Provenance")) == before
    last = entries(store)[-1]
    assert last["subtype"] == "operation" and last["outcome"] == "0"


def test_an_invalid_resource_answers_200_with_each_problem_at_its_element(
    client: TestClient,
) -> None:
    issues = _issues(
        client.post(
            "/fhir/Patient/$validate",
            json=_patient(gender="mail", birthDate="02/03/1941", colour="blue"),
        )
    )
    found = {(i["severity"], tuple(i.get("expression", ()))) for i in issues}
    assert ("error", ("Patient.birthDate",)) in found
    assert ("error", ("Patient.colour",)) in found


def test_parameters_modes_and_profiles(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=_patient()).json()
    url = f"/fhir/Patient/{created['id']}/$validate"
    # An update of it, as Parameters.
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {**_patient(), "id": created["id"]}},
            {"name": "mode", "valueCode": "update"},
            {
                "name": "profile",
                "valueUri": "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
            },
        ],
    }
    assert _issues(client.post(url, json=parameters))[0]["severity"] == "information"
    # The id of the body must be the URL's, as for an update.
    wrong = _issues(client.post(url, json={**_patient(), "id": "another"}))
    assert wrong[0]["diagnostics"] == "GW-0112: id does not match the URL"
    # A delete of it would be accepted; nothing was deleted.
    assert _issues(client.post(f"{url}?mode=delete"))[0]["severity"] == "information"
    assert client.get(f"/fhir/Patient/{created['id']}").status_code == 200
    # A profile the gateway does not know is said so.
    unknown = _issues(
        client.post("/fhir/Patient/$validate?profile=http://example.org/Other", json=_patient())
    )
    assert unknown[0]["code"] == "not-supported"
    # What cannot be understood is a 400.
    assert client.post("/fhir/Patient/$validate?mode=merge", json=_patient()).status_code == 400
    assert client.post("/fhir/Patient/$validate?mode=delete").status_code == 400
    assert client.post("/fhir/Patient/$validate").status_code == 400


def test_what_the_token_may_not_do_is_an_issue(store: Store) -> None:
    token = access_token(store, client_id="reader", scopes="system/*.rs")
    with make_client(store, token=token) as reader:
        issues = _issues(reader.post("/fhir/Patient/$validate", json=_patient()))
    assert issues[0]["code"] == "forbidden"


def test_an_update_or_delete_of_a_hidden_record_answers_as_of_a_missing_one(
    world: World,
) -> None:
    """The care home's Condition is hidden from the hospital."""
    headers = world.headers("hospital")
    missing = "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    for mode in ("update", "delete"):

        def ask(res_id: str, mode: str = mode) -> Any:
            body = {
                "resourceType": "Condition",
                "id": res_id,
                "subject": world.subject,
                "code": {"text": "Asthma"},
            }
            return world.api.post(
                f"/fhir/Condition/{res_id}/$validate?mode={mode}",
                json=body if mode == "update" else None,
                headers=headers,
            )

        hidden, absent = ask(world.asthma), ask(missing)
        assert _shape(hidden, world.asthma) == _shape(absent, missing)
        assert _issues(hidden)[0]["code"] == "not-found"
    kept = world.get("home", f"/fhir/Condition/{world.asthma}").json()
    assert kept["meta"]["versionId"] == "1"


UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/"


def test_a_uk_core_profile_asked_for_is_checked_as_the_write_would(client: TestClient) -> None:
    """profile=UKCore-Patient: the NHS number must be ten digits with its
    Modulus 11 check digit, an issue at its element naming the profile; the
    same Patient claiming nothing would be accepted as R4 alone."""
    patient = _patient(identifier=[{"system": NHS, "value": "9990000043"}])
    assert _issues(client.post("/fhir/Patient/$validate", json=patient))[0]["code"] == (
        "informational"
    )
    url = f"/fhir/Patient/$validate?profile={UK_CORE}UKCore-Patient"
    (issue,) = _issues(client.post(url, json=patient))
    assert (issue["severity"], issue["expression"]) == ("error", ["Patient.identifier[0].value"])
    assert f"{UK_CORE}UKCore-Patient|2.5.0" in issue["diagnostics"]
    assert "Modulus 11" in issue["diagnostics"]
    # As Parameters, with the version the gateway has.
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": _patient()},
            {"name": "profile", "valueCanonical": f"{UK_CORE}UKCore-Patient|2.5.0"},
        ],
    }
    assert _issues(client.post("/fhir/Patient/$validate", json=parameters))[0]["code"] == (
        "informational"
    )


def test_a_profile_not_in_uk_core_2_0_1_is_not_supported(client: TestClient) -> None:
    """UKCore-Task is not in the UK Core version the gateway has (2.0.1), nor
    is another version of one it has."""
    task = {"resourceType": "Task", "status": "requested", "intent": "order"}
    for profile in (f"{UK_CORE}UKCore-Task", f"{UK_CORE}UKCore-Patient|1.0.0"):
        res_type = "Task" if "Task" in profile else "Patient"
        body = task if res_type == "Task" else _patient()
        issues = _issues(client.post(f"/fhir/{res_type}/$validate?profile={profile}", json=body))
        assert issues[0]["code"] == "not-supported", issues


def test_a_claim_is_checked_and_an_unknown_one_only_warned_of(client: TestClient) -> None:
    """meta.profile: UKCore-Patient is checked (the write would be refused);
    a profile the gateway does not know is a warning after the write's
    acceptance, and the write itself is accepted."""
    claiming = _patient(
        meta={"profile": [f"{UK_CORE}UKCore-Patient"]},
        identifier=[{"system": NHS, "value": "999000004"}],
    )
    (issue,) = _issues(client.post("/fhir/Patient/$validate", json=claiming))
    assert issue["severity"] == "error" and issue["expression"] == ["Patient.identifier[0].value"]
    assert client.post("/fhir/Patient", json=claiming).status_code == 400
    unknown = _patient(meta={"profile": ["https://example.org/StructureDefinition/OurPatient"]})
    accepted, warned = _issues(client.post("/fhir/Patient/$validate", json=unknown))
    assert accepted["code"] == "informational"
    assert (warned["severity"], warned["code"], warned["expression"]) == (
        "warning",
        "not-supported",
        ["Patient.meta.profile[0]"],
    )
    assert client.post("/fhir/Patient", json=unknown).status_code == 201


def test_every_profile_the_capability_statement_names_is_validated(client: TestClient) -> None:
    """The CapabilityStatement's supportedProfile tells the truth: $validate
    takes each, for its type."""
    statement = client.get("/fhir/metadata").json()
    named = [
        (entry["type"], profile)
        for entry in statement["rest"][0]["resource"]
        for profile in entry.get("supportedProfile", ())
    ]
    assert (
        "Patient",
        f"{UK_CORE}UKCore-Patient",
    ) in named and len(named) == 20
    for res_type, profile in named:
        answer = client.post(
            f"/fhir/{res_type}/$validate?profile={profile}", json={"resourceType": res_type}
        )
        assert all(i["code"] != "not-supported" for i in _issues(answer)), (res_type, profile)
