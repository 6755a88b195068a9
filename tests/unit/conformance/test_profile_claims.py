"""Every resource of the fixtures (the mappings' golden outputs, the R4
examples) and of the demo's directory that claims a UK Core profile meets
it; the claims of profiles the gateway does not have (UK Core 2.0.1 lacks
them, or another IG's) are those known."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import profiles
from conformance.validation import validate_resource
from gateway.demo.generate import write_directory
from mappings.directory import read_directory
from tests.unit.conformance.test_validator_agreement import FILES, resources

UK = "https://fhir.hl7.org.uk/StructureDefinition/"
# Claimed by R4 examples of the registry's types, and not in UK Core 2.0.1
# (conformance/profiles/README.md): warned of, not checked.
NOT_IN_2_0_1 = {UK + f"UKCore-{name}" for name in ("Device", "DocumentReference", "Flag", "Task")}
# Claimed by the Subscription example, as a subscriber would claim it: the
# Subscriptions Backport IG's profile, which the gateway does not have either.
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
NOT_CHECKED = NOT_IN_2_0_1 | {BACKPORT}


def _claiming(found: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in found if (r.get("meta") or {}).get("profile")]


def _fixture_claims() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.parent.name}/{path.name}#{index}", resource)
        for path in FILES
        for index, resource in enumerate(_claiming(resources(json.loads(path.read_text("utf-8")))))
    ]


def _assert_meets_its_claims(resource: dict[str, Any]) -> None:
    issues = validate_resource(resource, resource["resourceType"], warnings=True)
    errors = [i for i in issues if i.severity == "error"]
    assert errors == [], errors
    unknown = {i.profile for i in issues if i.code == "not-supported"}
    assert unknown <= NOT_CHECKED, unknown


@pytest.mark.parametrize(
    ("name", "resource"), _fixture_claims(), ids=[n for n, _ in _fixture_claims()]
)
def test_every_fixture_resource_meets_the_uk_core_profiles_it_claims(
    name: str, resource: dict[str, Any]
) -> None:
    _assert_meets_its_claims(resource)


def test_the_fixtures_claim_every_profile_the_gateway_validates() -> None:
    """So that the test above tries each profile of the tables on a rich
    resource of its type."""
    claimed = {c for _, r in _fixture_claims() for c in r["meta"]["profile"]}
    assert set(profiles.profiles()) <= claimed


def test_the_demos_directory_organisations_meet_uk_core_organization(tmp_path: Path) -> None:
    """The directory's mapping (``mappings.directory``) is the one that
    claims a profile: UKCore-Organization, with its ODS code slice."""
    written = write_directory(tmp_path / "directory.csv")
    with (tmp_path / written.path).open("rb") as stream:
        organisations = [row.organization for row in read_directory(stream)]
    assert len(organisations) == written.records
    for organisation in organisations:
        assert organisation is not None
        assert organisation["meta"]["profile"] == [UK + "UKCore-Organization"]
        _assert_meets_its_claims(organisation)
