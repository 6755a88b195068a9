"""Restricted-data labels from code lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consent.labels import (
    BadCodeLists,
    code_lists,
    labelled,
    load_code_lists,
    parse_code_lists,
    use_code_lists,
)
from consent.model import ACT_CODE, CONFIDENTIALITY

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def test_the_shipped_lists_label_by_snomed_code_and_icd10_prefix() -> None:
    lists = code_lists()
    assert lists.labels_for([(SNOMED, "35489007")]) == {(ACT_CODE, "PSY")}
    assert lists.labels_for([(SNOMED, "86406008")]) == {(ACT_CODE, "SEX")}
    assert lists.labels_for([(ICD10, "F32.1")]) == {(ACT_CODE, "PSY")}
    assert lists.labels_for([(ICD10, "F101")]) == {(ACT_CODE, "ETH")}
    assert lists.labels_for([("http://hl7.org/fhir/sid/icd-10-uk", "B20")]) == {(ACT_CODE, "SEX")}
    # F64 is both a personality-disorder block code (PSY) and legally restricted.
    assert lists.labels_for([(ICD10, "F64.0")]) == {(ACT_CODE, "PSY"), (CONFIDENTIALITY, "R")}


def test_other_codes_and_other_systems_carry_no_label() -> None:
    lists = code_lists()
    assert lists.labels_for([(SNOMED, "195967001")]) == frozenset()  # asthma
    assert lists.labels_for([(ICD10, "J45")]) == frozenset()
    # The same code in another system means something else.
    assert lists.labels_for([("http://loinc.org", "35489007")]) == frozenset()
    # An SNOMED code is never matched by prefix.
    assert lists.labels_for([(SNOMED, "3548")]) == frozenset()


def test_a_code_without_a_system_is_read_as_every_listed_system_would() -> None:
    """Nothing says what a code sent without a system means, so a record
    the lists cover in any system is labelled rather than shared."""
    lists = code_lists()
    assert lists.labels_for([(None, "35489007")]) == {(ACT_CODE, "PSY")}  # SNOMED's
    assert lists.labels_for([(None, "f32.9")]) == {(ACT_CODE, "PSY")}  # ICD-10's
    assert lists.labels_for([(None, "F640")]) == {(ACT_CODE, "PSY"), (CONFIDENTIALITY, "R")}
    assert lists.labels_for([(None, "J44.1")]) == frozenset()
    assert lists.labels_for([(None, "")]) == frozenset()
    # A system that is named keeps its own meaning: no other system's list.
    assert lists.labels_for([(SNOMED, "F32.9")]) == frozenset()


def test_labels_are_added_to_those_sent_and_none_removed() -> None:
    sent = [{"system": CONFIDENTIALITY, "code": "N"}]
    assert labelled(sent, [(SNOMED, "35489007")]) == [
        {"system": CONFIDENTIALITY, "code": "N"},
        {"system": ACT_CODE, "code": "PSY"},
    ]
    already = [{"system": ACT_CODE, "code": "PSY"}]
    assert labelled(already, [(SNOMED, "35489007")]) is None
    assert labelled(sent, [(SNOMED, "195967001")]) is None


def test_lists_of_ones_own_replace_the_shipped_ones(tmp_path: Path) -> None:
    own = {
        "systems": {"snomed": [SNOMED], "icd10": [ICD10]},
        "lists": [
            {
                "label": {"system": ACT_CODE, "code": "SDV"},
                "snomed": {"195967001": "for the test"},
                "icd10": {"J4": "for the test"},
            }
        ],
    }
    path = tmp_path / "codes.json"
    path.write_text(json.dumps(own))
    try:
        use_code_lists(load_code_lists(path))
        assert code_lists().labels_for([(SNOMED, "195967001")]) == {(ACT_CODE, "SDV")}
        assert code_lists().labels_for([(ICD10, "J45.9")]) == {(ACT_CODE, "SDV")}
        assert code_lists().labels_for([(SNOMED, "35489007")]) == frozenset()
    finally:
        use_code_lists(None)
    assert code_lists().labels_for([(SNOMED, "35489007")]) == {(ACT_CODE, "PSY")}


def test_unusable_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadCodeLists):
        parse_code_lists({"lists": []})
    with pytest.raises(BadCodeLists):
        parse_code_lists({"systems": {"snomed": [SNOMED], "icd10": []}, "lists": [{}]})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(BadCodeLists):
        load_code_lists(broken)
    with pytest.raises(BadCodeLists):
        load_code_lists(tmp_path / "missing.json")
