"""Secondary use, on each store: what an analytics team asking for
population health would be given (the decisions bulk export will make, as
the consent engine takes them over data written through the API): every
person's unrestricted records with no care relationship, and nothing of a
person who opted out (a type 1 opt-out in their GP record, or the National
Data Opt-out list loaded as the operator loads it), nor restricted or
R-confidential data, nor what a Consent denies for that purpose; while the
GP's direct care is unchanged by any of it. Through the ordinary API an
analytics client gets nothing at all: secondary use is served by bulk
export alone (PRODUCT.md section 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consent.model import Requester
from gateway.access.control import AccessControl
from gateway.auth.tokens import Purpose
from gateway.cli import main
from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries as audit_entries
from tests.support.consents import privacy_consent

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
GP, ICB = "A81001", "QMJ"
NHS_NUMBER = "9990000018"
OPTED_OUT, WITHDRAWN = "827241000000103", "827261000000102"


class World:
    """A person registered with a GP that writes their record: asthma, a
    depression (PSY), a record the law restricts (R); and an ICB's population
    health team, which cares for no one."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens = {
            "gp": access_token(store, client_id="gp", kind="gp-practice", org=GP),
            "icb": access_token(
                store, client_id="icb", kind="analytics", org=ICB, purpose=Purpose.POPHLTH
            ),
            "planning": access_token(
                store, client_id="planning", kind="analytics", org=ICB, purpose=Purpose.HOPERAT
            ),
        }
        self.api = make_client(store, token=None)
        self.api.__enter__()
        self.patient = self.post(
            {
                "resourceType": "Patient",
                "identifier": [{"system": NHS, "value": NHS_NUMBER}],
                "generalPractitioner": [{"identifier": {"system": ODS, "value": GP}}],
            }
        )
        self.subject = {"reference": f"Patient/{self.patient}"}
        self.made: list[str] = []  # the person's Conditions, as written
        self.asthma = self.condition("195967001", "Asthma")
        self.depression = self.condition("35489007", "Depression", security=[(ACT, "PSY")])
        self.restricted = self.condition("1234567", "Restricted", security=[(CONFIDENTIALITY, "R")])

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, resource: dict[str, Any]) -> str:
        answer = self.api.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=self.headers("gp")
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def condition(
        self, code: str, text: str, security: list[tuple[str, str]] = (), when: str = "2024-01-10"
    ) -> str:  # type: ignore[assignment]
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "subject": self.subject,
            "code": {"coding": [{"system": SNOMED, "code": code}], "text": text},
            "onsetDateTime": when,
        }
        if security:
            resource["meta"] = {"security": [{"system": s, "code": c} for s, c in security]}
        made = self.post(resource)
        self.made.append(made)
        return made

    def coded_observation(self, code: str, when: str) -> str:
        """A GP record of a type 1 opt-out, or its withdrawal."""
        return self.post(
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": self.subject,
                "code": {"coding": [{"system": SNOMED, "code": code}]},
                "effectiveDateTime": when,
            }
        )

    def get(self, who: str, url: str) -> Any:
        return self.api.get(url, headers=self.headers(who))

    def sees(self, who: str, res_type: str, res_id: str) -> bool:
        """Whether the analytics team (``icb``: POPHLTH, ``planning``:
        HOPERAT) would be given the resource, as the engine decides now."""
        purpose = {"icb": "POPHLTH", "planning": "HOPERAT"}[who]
        requester = Requester(ICB, "analytics", purpose, client_id=who)
        found = self.store.read(res_type, res_id)
        assert found is not None
        return AccessControl(self.store, requester).visible(found)

    def conditions(self, who: str) -> list[str]:
        if who == "gp":  # direct care, through the API
            bundle = self.get(who, f"/fhir/Condition?subject=Patient/{self.patient}").json()
            return sorted(e["resource"]["id"] for e in bundle.get("entry", []))
        return sorted(c for c in self.made if self.sees(who, "Condition", c))


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    built = World(store)
    yield built
    built.api.__exit__(None, None, None)


def _as_missing(world: World, who: str, res_type: str, hidden_id: str) -> None:
    """A withheld resource is not given."""
    assert not world.sees(who, res_type, hidden_id)


def test_the_ordinary_api_gives_an_analytics_client_nothing(world: World) -> None:
    """Secondary use is served by bulk export alone: every other interaction
    is refused, alike whatever it names, and audited."""
    for url in (
        f"/fhir/Condition/{world.asthma}",
        "/fhir/Condition/no-such-condition",
        f"/fhir/Condition?subject=Patient/{world.patient}",
        f"/fhir/Patient/{world.patient}/$everything",
        f"/fhir/Patient/{world.patient}/$summary",
        "/fhir/_history",
    ):
        refused = world.get("icb", url)
        assert refused.status_code == 403, (url, refused.text)
        assert "bulk export" in refused.json()["issue"][0]["diagnostics"]
    written = world.api.post(
        "/fhir/Condition",
        json={"resourceType": "Condition", "subject": world.subject},
        headers=world.headers("icb"),
    )
    assert written.status_code == 403


def test_population_health_sees_the_unrestricted_record_with_no_relationship(
    world: World,
) -> None:
    assert world.sees("icb", "Condition", world.asthma)
    assert world.sees("icb", "Patient", world.patient)
    assert world.conditions("icb") == [world.asthma]
    # Restricted and R-confidential data never, as missing.
    _as_missing(world, "icb", "Condition", world.depression)
    _as_missing(world, "icb", "Condition", world.restricted)
    # The GP, who cares for the person and wrote it all, sees everything.
    assert world.conditions("gp") == sorted([world.asthma, world.depression, world.restricted])


def test_a_type_1_opt_out_leaves_the_person_out_until_withdrawn(world: World) -> None:
    opt_out = world.coded_observation(OPTED_OUT, "2025-01-01")
    assert world.conditions("icb") == []
    _as_missing(world, "icb", "Condition", world.asthma)
    _as_missing(world, "icb", "Patient", world.patient)
    _as_missing(world, "icb", "Observation", opt_out)
    # Direct care is unchanged.
    assert world.conditions("gp") == sorted([world.asthma, world.depression, world.restricted])
    # A withdrawal dated before the opt-out does not withdraw it...
    world.coded_observation(WITHDRAWN, "2024-06-01")
    assert world.conditions("icb") == []
    # ...a later one does, on the very next request.
    world.coded_observation(WITHDRAWN, "2025-06-01")
    assert world.conditions("icb") == [world.asthma]
    # And a later opt-out again (recorded as a Condition this time).
    world.condition(OPTED_OUT, "Dissent from secondary use", when="2025-09-01")
    assert world.conditions("icb") == []


def test_for_secondary_use_having_written_the_record_decides_nothing(world: World) -> None:
    """An analytics client of the very organisation that wrote the records
    (the same ODS code) is decided by the person's opt-outs like any
    other: in direct care the author sees its own whoever the person is,
    for secondary use it does not, and the person is read either way."""
    own = Requester(GP, "analytics", "POPHLTH", client_id="gp-analytics")

    def sees(res_id: str) -> bool:
        found = world.store.read("Condition", res_id)
        assert found is not None
        return AccessControl(world.store, own).visible(found)

    assert sees(world.asthma)
    assert not sees(world.depression)  # restricted, whoever wrote it
    world.coded_observation(OPTED_OUT, "2025-01-01")
    assert not sees(world.asthma)


def test_the_national_data_opt_out_list_as_the_operator_loads_it(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.store.url)
    listed = tmp_path / "opted-out.txt"
    listed.write_text(f"{NHS_NUMBER}\n\n9990000017\n943 476 5919\n")
    assert main(["opt-outs", "load", str(listed)]) == 1  # one line rejected
    out, err = capsys.readouterr()
    assert "2 NHS numbers loaded, 1 lines rejected" in out
    assert f"{listed}:3: rejected:" in err and "Modulus 11" in err
    assert world.conditions("icb") == []
    _as_missing(world, "icb", "Condition", world.asthma)
    assert world.conditions("gp") == sorted([world.asthma, world.depression, world.restricted])
    # A file that cannot be read changes nothing.
    assert main(["opt-outs", "load", str(tmp_path / "absent.txt")]) == 1
    assert "the list is unchanged" in capsys.readouterr().err
    assert world.conditions("icb") == []
    # The next answer of the check service no longer lists them: replaced whole.
    listed.write_text("9434765919\n")
    assert main(["opt-outs", "load", str(listed)]) == 0
    assert world.conditions("icb") == [world.asthma]


def test_a_consent_denying_the_purpose_applies(world: World) -> None:
    reason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    world.post(
        privacy_consent(
            world.subject,
            {
                "type": "permit",
                "provision": [{"type": "deny", "purpose": [{"system": reason, "code": "POPHLTH"}]}],
            },
        )
    )
    assert world.conditions("icb") == []
    _as_missing(world, "icb", "Condition", world.asthma)
    # Another purpose the Consent does not deny, and direct care, are unchanged.
    assert world.conditions("planning") == [world.asthma]
    assert world.conditions("gp") == sorted([world.asthma, world.depression, world.restricted])


def test_access_check_says_which_secondary_use_rule_decided(world: World) -> None:
    """``$access-check`` for the analytics team under POPHLTH names the
    rule: restricted data never, then the person's type 1 opt-out."""
    auditor = access_token(
        world.store,
        client_id="auditor",
        kind="auditor",
        org="X26",
        scopes="system/Patient.rs system/Consent.rs",
        purpose=Purpose.HCOMPL,
    )

    def withheld_for(rules_of: str) -> set[str]:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": world.subject},
                {"name": "organization", "valueIdentifier": {"system": ODS, "value": ICB}},
                {"name": "purpose", "valueCode": "POPHLTH"},
            ],
        }
        answer = world.api.post(
            "/fhir/$access-check", json=body, headers={"Authorization": f"Bearer {auditor}"}
        )
        assert answer.status_code == 200, answer.text
        rules: set[str] = set()
        for item in answer.json()["parameter"]:
            if item["name"] == "type" and any(
                p.get("valueCode") == rules_of for p in item["part"] if p["name"] == "type"
            ):
                for part in item["part"]:
                    if part["name"] == "reason":
                        named = {p["name"]: p for p in part["part"]}
                        rules.add(named["rule"]["valueCode"])
        return rules

    assert "restricted-never-secondary" in withheld_for("Condition")
    assert "type-1-opt-out" not in withheld_for("Condition")
    world.coded_observation(OPTED_OUT, "2025-01-01")
    assert "type-1-opt-out" in withheld_for("Condition")


def test_the_refusal_is_audited_and_tells_nothing(world: World) -> None:
    world.coded_observation(OPTED_OUT, "2025-01-01")
    shown = world.get("icb", f"/fhir/Condition/{world.asthma}")
    missing = world.get("icb", "/fhir/Condition/no-such-condition")
    assert shown.status_code == missing.status_code == 403
    assert shown.content == missing.content  # the same refusal, whatever stands there
    last = audit_entries(world.store)[-1]
    assert (last["org_ods"], last["purpose"]) == (ICB, "POPHLTH")
    assert last["outcome"] != "0"
