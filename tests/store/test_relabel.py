"""Stored records brought up to the restricted code lists in force, on both stores."""

from __future__ import annotations

from typing import Any

from consent.labels import code_lists, parse_code_lists, use_code_lists
from gateway import fhirjson
from gateway.interactions.provenance import Author
from gateway.interactions.relabel import ensure_labelled
from gateway.interactions.write import create
from gateway.loading.source import ForSource
from gateway.search.matching import matching_ids
from gateway.store import Store

SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HOME = ForSource(Author("H81001", "Elm House", "home", "Elm House records"))
# Lists that know nothing of depression: what a gateway ran with before.
NARROW = {
    "systems": {"snomed": [SNOMED], "icd10": ["http://hl7.org/fhir/sid/icd-10"]},
    "lists": [{"label": {"system": ACT_CODE, "code": "SDV"}, "snomed": {"95930005": "test"}}],
}


def _condition(code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p-1"},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
    }


def test_records_stored_under_narrower_lists_are_labelled_once_they_grow(store: Store) -> None:
    """A depression stored while the lists did not name it gains PSY in a new
    version by the same author, with a Provenance naming the gateway; an
    asthma is left alone, and a second start relabels nothing."""
    try:
        use_code_lists(parse_code_lists(NARROW))
        depression = create(store, HOME, "Condition", _condition("35489007")).version
        asthma = create(store, HOME, "Condition", _condition("195967001")).version
        assert ensure_labelled(store) == 0  # the narrow lists are recorded as applied
        assert ensure_labelled(store) is None
    finally:
        use_code_lists(None)

    assert ensure_labelled(store) == 1
    assert ensure_labelled(store) is None
    stored = store.read("Condition", depression.res_id)
    assert stored is not None and stored.version == 2
    content = fhirjson.loads(stored.content or b"")
    assert content["meta"]["security"] == [{"system": ACT_CODE, "code": "PSY"}]
    assert content["meta"]["source"] == "urn:ods:H81001"  # still the home's record
    assert content["code"] == _condition("35489007")["code"]
    assert store.read("Condition", asthma.res_id).version == 1  # type: ignore[union-attr]
    assert matching_ids(store, "Condition", f"_security={ACT_CODE}|PSY", visible=None) == [
        depression.res_id
    ]
    # One Provenance for each version: the home's, then the gateway's.
    said = {}
    for res_id in matching_ids(
        store, "Provenance", f"target=Condition/{depression.res_id}", visible=None
    ):
        found = fhirjson.loads(store.read("Provenance", res_id).content or b"")  # type: ignore[union-attr]
        said[found["target"][0]["reference"].rpartition("/")[2]] = found
    assert sorted(said) == ["1", "2"]
    assert said["2"]["agent"][0]["who"]["identifier"]["value"] == "GATEWAY"
    assert said["2"]["activity"]["coding"][0]["code"] == "UPDATE"
    assert store.index_version("labels") == code_lists().fingerprint
