"""What the access layer reads from a stored resource for the consent rules."""

from __future__ import annotations

import pytest

from consent.model import ACT_CODE
from gateway import fhirjson
from gateway.access.control import stored_facts
from gateway.access.facts import (
    _PERSON_ELEMENT,
    facts_of,
    labelling_codes,
    named_records,
    person_of,
)
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.extract import extract
from gateway.search.parameters import parameter
from gateway.store.values import ReferenceValue


def _person_by_extraction(resource: dict[str, object]) -> str | None:
    """The person the type's first Patient compartment parameter names, by
    the search extraction (what ``person_of`` must agree with)."""
    res_type = str(resource["resourceType"])
    found = parameter(res_type, PATIENT_COMPARTMENT[res_type][0])
    assert found is not None
    named = [
        v.target_id
        for v in extract(resource, found)
        if isinstance(v, ReferenceValue) and v.target_type == "Patient"
    ]
    return named[0] if named else None


@pytest.mark.parametrize("res_type", sorted(_PERSON_ELEMENT))
@pytest.mark.parametrize(
    "reference", ["Patient/p-1", "http://elsewhere.example/fhir/Patient/p-1", "Group/g-1"]
)
def test_the_person_read_directly_is_the_one_the_compartment_names(
    res_type: str, reference: str
) -> None:
    resource = {"resourceType": res_type, _PERSON_ELEMENT[res_type]: {"reference": reference}}
    assert person_of(resource) == _person_by_extraction(resource)


@pytest.mark.parametrize(
    "targets",
    [
        [{"reference": "Observation/o-1/_history/1"}, {"reference": "Condition/c-1"}],
        [{"reference": "Observation/o-1"}, {"reference": "Patient/p-1/_history/2"}],
        [{"reference": "https://elsewhere.example/fhir/Patient/p-2"}],
        [{"type": "Patient", "identifier": {"value": "9434765919"}}],
        [{"reference": "Observation/o-1"}, {"display": "a note"}],
        [{"reference": "#contained"}],
        [],
        {"reference": "Patient/p-3"},
        "Patient/p-4",
    ],
)
def test_a_provenance_without_a_patient_target_is_no_ones_by_the_shortcut_too(
    targets: object,
) -> None:
    """A Provenance's person is read without extraction when none of its
    targets can be a Patient; the answer is the extraction's either way."""
    provenance = {"resourceType": "Provenance", "target": targets}
    assert person_of(provenance) == _person_by_extraction(provenance)


def test_no_ones_record_has_no_person() -> None:
    assert person_of({"resourceType": "Organization", "id": "o"}) is None
    assert person_of({"resourceType": "Patient", "id": "p"}) == "p"


def test_facts_without_content_leave_out_codes_and_dates() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c",
        "meta": {"source": "urn:ods:A81001", "security": [{"system": ACT_CODE, "code": "PSY"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
        "onsetDateTime": "2024-01-10",
        "subject": {"reference": "Patient/p"},
    }
    full, light = facts_of(condition), facts_of(condition, content=False)
    assert full.codes == {("http://snomed.info/sct", "35489007")}
    assert full.clinical_low is not None and full.clinical_low.startswith("2024-01-10")
    assert light.codes == frozenset() and light.clinical_low is None
    assert full.labels == light.labels == {(ACT_CODE, "PSY")}
    assert full.author_ods == light.author_ods == "A81001"


def test_labelling_reads_the_main_code_reasons_and_coded_values() -> None:
    observation = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "165816005"}]
        },
    }
    encounter = {
        "resourceType": "Encounter",
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}],
    }
    assert ("http://snomed.info/sct", "165816005") in labelling_codes(observation)
    assert ("http://loinc.org", "75622-1") in labelling_codes(observation)
    assert labelling_codes(encounter) == [("http://snomed.info/sct", "35489007")]


def test_a_stored_versions_facts_are_worked_out_once_from_its_bytes() -> None:
    """The same bytes give the same facts, kept; other bytes (another
    version, another label) are worked out afresh, never taken for them."""
    condition = {
        "resourceType": "Condition",
        "id": "c-kept",
        "meta": {"versionId": "1", "source": "urn:ods:A81001"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]},
        "subject": {"reference": "Patient/p-1"},
    }
    first = fhirjson.dumps(condition)
    assert stored_facts(first) is stored_facts(bytes(first))
    person, light, full, named, identifier = stored_facts(first)
    assert (person, light, full) == ("p-1", facts_of(condition, content=False), facts_of(condition))
    assert named == () and identifier is None
    labelled = {**condition, "meta": {**condition["meta"], "security": [{"code": "PSY"}]}}
    assert stored_facts(fhirjson.dumps(labelled)).light.labels == {(None, "PSY")}


def test_what_a_resource_names_is_what_it_is_shown_only_with() -> None:
    """The kinds that gather records name them; contained ones are their
    own; a reference without a type and id names nothing to decide."""
    report = {
        "resourceType": "DiagnosticReport",
        "result": [{"reference": "Observation/o1"}, {"reference": "#inline"}, {"display": "x"}],
    }
    panel = {"resourceType": "Observation", "hasMember": [{"reference": "Observation/o2"}]}
    visit = {
        "resourceType": "Encounter",
        "diagnosis": [{"condition": {"reference": "Condition/c1"}}],
    }
    summary = {
        "resourceType": "Composition",
        "section": [
            {
                "entry": [{"reference": "Condition/c2"}],
                "section": [{"entry": [{"reference": "Condition/c3"}]}],
            }
        ],
    }
    assert named_records(report) == ["Observation/o1"]
    assert named_records(panel) == ["Observation/o2"]
    assert named_records(visit) == ["Condition/c1"]
    assert sorted(named_records(summary)) == ["Condition/c2", "Condition/c3"]
    assert (
        named_records(
            {
                "resourceType": "Condition",
                "evidence": [{"detail": [{"reference": "Observation/o3"}]}],
            }
        )
        == []
    )
