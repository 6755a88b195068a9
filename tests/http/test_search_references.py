"""Reference search with many values of several types at once (as the
documents' Provenance search asks), on SQLite and PostgreSQL alike: each
``[type]/id`` keeps to its own type, a bare id matches any type, absolute URLs
and versioned references match as a single value does."""

from __future__ import annotations

from itertools import cycle
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import BASE_URL
from tests.http.test_search import _put, ids, people  # noqa: F401  (fixture)

ELSEWHERE = "https://elsewhere.example/fhir/Patient/ext-1"


def _observation(obs_id: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "364075005"}]},
        "subject": {"reference": subject},
    }


@pytest.fixture
def subjects(people: TestClient) -> TestClient:  # noqa: F811
    """Besides Patient/ada and Patient/tom's pulses (``people``): a Device
    with Ada's id and a Location with Tom's, each the subject of an
    Observation, and an Observation about a patient on another server."""
    _put(people, {"resourceType": "Device", "id": "ada"})
    _put(people, {"resourceType": "Location", "id": "tom", "name": "Ward 3"})
    _put(people, _observation("obs-device-ada", "Device/ada"))
    _put(people, _observation("obs-location-tom", "Location/tom"))
    _put(people, _observation("obs-elsewhere", ELSEWHERE))
    return people


def test_each_typed_value_keeps_to_its_type(subjects: TestClient) -> None:
    def search(values: str) -> list[str]:
        return ids(subjects, f"/fhir/Observation?subject={values}")

    assert search("Patient/ada,Location/tom") == ["obs-location-tom", "pulse-ada", "pulse-ada-2"]
    assert search("Patient/tom,Device/ada") == ["obs-device-ada", "pulse-tom"]
    assert search("Location/tom,Device/ada,Patient/zoe") == ["obs-device-ada", "obs-location-tom"]
    assert search("Patient/ada,Patient/tom") == ["pulse-ada", "pulse-ada-2", "pulse-tom"]
    assert search("Patient/ada,Device/ada") == ["obs-device-ada", "pulse-ada", "pulse-ada-2"]
    assert search("Device/tom,Location/ada") == []
    assert ids(subjects, "/fhir/Observation?subject:Patient=ada,tom") == [
        "pulse-ada",
        "pulse-ada-2",
        "pulse-tom",
    ]
    assert ids(subjects, "/fhir/Observation?subject:Device=ada,tom") == ["obs-device-ada"]


def test_bare_ids_urls_and_versions_mixed_with_typed_values(subjects: TestClient) -> None:
    def search(values: str) -> list[str]:
        return ids(subjects, f"/fhir/Observation?subject={values}")

    # a bare id, of a parameter with several target types, is of any type
    assert search("tom,Device/ada") == ["obs-device-ada", "obs-location-tom", "pulse-tom"]
    assert search("tom,Patient/tom") == ["obs-location-tom", "pulse-tom"]
    assert search("tom,ada") == [
        "obs-device-ada",
        "obs-location-tom",
        "pulse-ada",
        "pulse-ada-2",
        "pulse-tom",
    ]
    assert search(f"{ELSEWHERE},Device/ada") == ["obs-device-ada", "obs-elsewhere"]
    assert search(f"{ELSEWHERE},tom") == ["obs-elsewhere", "obs-location-tom", "pulse-tom"]
    assert search(f"{BASE_URL}/Patient/ada,Location/tom") == [
        "obs-location-tom",
        "pulse-ada",
        "pulse-ada-2",
    ]
    assert search("Patient/tom/_history/1,Device/ada") == ["obs-device-ada", "pulse-tom"]
    assert search("https://elsewhere.example/fhir/Patient/other,Device/nobody") == []


def test_a_hundred_values_of_several_types(subjects: TestClient) -> None:
    found = ["Patient/ada", "Location/tom", "Device/ada"]
    absent = [
        f"{kind}/none-{n}"
        for n, kind in zip(range(97), cycle(["Patient", "Device", "Location"]), strict=False)
    ]
    values = ",".join(absent[:40] + found + absent[40:])
    assert ids(subjects, f"/fhir/Observation?subject={values}") == [
        "obs-device-ada",
        "obs-location-tom",
        "pulse-ada",
        "pulse-ada-2",
    ]


def test_several_values_as_a_further_condition(subjects: TestClient) -> None:
    """With ``_id`` driving, the reference values are tested on each
    candidate rather than looked up."""
    candidates = "pulse-ada,pulse-tom,obs-location-tom,obs-device-ada"
    assert ids(
        subjects, f"/fhir/Observation?_id={candidates}&subject=Patient/ada,Location/tom"
    ) == ["obs-location-tom", "pulse-ada"]
    assert ids(subjects, f"/fhir/Observation?_id={candidates}&subject=tom,Device/ada") == [
        "obs-device-ada",
        "obs-location-tom",
        "pulse-tom",
    ]


def test_modifiers_and_chains_beside_several_values(subjects: TestClient) -> None:
    assert ids(subjects, "/fhir/Observation?subject:missing=true") == []
    assert ids(subjects, "/fhir/Patient?general-practitioner:missing=true") == ["tom", "zoe"]
    assert ids(subjects, "/fhir/Observation?subject:Patient.name=okafor-smith,zoe") == ["pulse-tom"]
    assert ids(
        subjects,
        "/fhir/Observation?subject:Patient.general-practitioner=Practitioner/gp-khan,"
        "Organization/gp-khan",
    ) == ["pulse-ada", "pulse-ada-2"]
    assert ids(subjects, "/fhir/Patient?_has:Observation:subject:_id=pulse-tom,obs-device-ada") == [
        "tom"
    ]
