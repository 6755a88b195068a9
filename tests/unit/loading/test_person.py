"""The person, element by element: each source's statement of a Patient
merged with what is on file by the stated precedence (the practice's
record and the hospital's above a council's and a care home's; the
practice's first for the registered practice and the ethnic category),
and which source gave each element."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.loading.person import (
    ETHNIC_CATEGORY,
    PRACTICE,
    Source,
    composed,
    digest,
    elements,
    name,
    rank,
    standing,
    with_what_is_known,
)
from mappings.identity import NHS_NUMBER_SYSTEM
from mappings.ukcore import ETHNIC_URL, local_identifier, nhs_identifier, organisation

NUMBER = "9990000042"
GP = Source("F84003", "gp-connect", "gp-1", "2026-01-10T09:00:00.000000Z")
GP_LATER = Source("F84003", "gp-connect", "gp-2", "2026-03-01T09:00:00.000000Z")
HOSPITAL = Source("RKE", "hl7v2", "M1", "2026-02-01T10:00:00.000000Z")
HOSPITAL_EARLIER = Source("RKE", "hl7v2", "M0", "2025-12-01T10:00:00.000000Z")
HOME = Source("VM4X2", "care-home", "PTH-1", "2026-02-15T07:15:00.000000Z")
COUNCIL = Source("713", "cld", "REQ-1", None)  # a CLD row has no moment of its own

NHS_SLOT = f"identifier:{NHS_NUMBER_SYSTEM}|{NUMBER}"
GP_DOCTOR = {"reference": "Practitioner/p-1", "display": "Dr Samuel Achterberg"}


def _ethnic(code: str) -> dict[str, Any]:
    return {
        "url": ETHNIC_URL,
        "valueCodeableConcept": {"coding": [{"system": "ethnic", "code": code}]},
    }


def _patient(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [nhs_identifier(NUMBER)],
        **elements,
    }


def _named(family: str) -> list[dict[str, Any]]:
    return [{"use": "official", "family": family}]


class _OnFile:
    """A Patient on file and the sources of its elements, as the loader
    keeps them: each statement merged, and the elements it gave recorded."""

    def __init__(self) -> None:
        self.patient: dict[str, Any] | None = None
        self.sources: dict[str, Source] = {}
        self.digests: dict[str, str] = {}

    def states(self, by: Source, resource: dict[str, Any]) -> dict[str, str]:
        given = standing(
            self.patient or {},
            {e: (s, self.digests[e]) for e, s in self.sources.items()},
        )
        merged = with_what_is_known(resource, self.patient, by, given)
        self.patient = merged.resource
        for element, gave in merged.given.items():
            self.sources[element] = by
            self.digests[element] = gave
        return merged.given

    def source(self, element: tuple[str, ...]) -> Source:
        return self.sources[name(element)]


def test_a_lower_source_never_replaces_a_higher_ones_value() -> None:
    person = _OnFile()
    person.states(GP, _patient(name=_named("Thornbury"), birthDate="1948-11-02"))
    given = person.states(
        HOME, _patient(name=_named("Thornbery"), birthDate="1948-11-20", gender="female")
    )
    assert person.patient is not None
    assert person.patient["name"] == _named("Thornbury")
    assert person.patient["birthDate"] == "1948-11-02"
    assert "name:official" not in given and "birthDate" not in given
    assert person.source(("name", "official")) == GP
    assert person.source(("gender",)) == HOME  # no one higher had said it
    person.states(COUNCIL, _patient(name=_named("Thornberry")))
    assert person.patient["name"] == _named("Thornbury")


def test_an_update_from_the_same_or_a_higher_source_replaces_the_value() -> None:
    person = _OnFile()
    person.states(HOME, _patient(address=[{"postalCode": "E8 1AA"}]))
    person.states(HOSPITAL, _patient(address=[{"postalCode": "E8 2BB"}]))
    assert person.patient is not None and person.patient["address"] == [{"postalCode": "E8 2BB"}]
    assert person.source(("address",)) == HOSPITAL
    person.states(GP_LATER, _patient(address=[{"postalCode": "E8 3CC"}]))
    assert person.patient["address"] == [{"postalCode": "E8 3CC"}]
    assert person.source(("address",)) == GP_LATER


@pytest.mark.parametrize("element", ["name", "birthDate", "gender", "address", "telecom"])
def test_the_practice_and_the_hospital_are_alike_for_identity_and_the_later_stands(
    element: str,
) -> None:
    """For who the person is, the two high sources rank alike: the record
    as at the later moment stands, whichever was loaded first."""
    values: dict[str, tuple[Any, Any, Any]] = {
        "name": (_named("A"), _named("B"), _named("C")),
        "birthDate": ("1948-11-02", "1948-11-03", "1948-11-04"),
        "gender": ("female", "other", "unknown"),
        "address": ([{"city": "A"}], [{"city": "B"}], [{"city": "C"}]),
        "telecom": ([{"value": "1"}], [{"value": "2"}], [{"value": "3"}]),
    }
    gp, hospital, earlier = values[element]
    key = ("name", "official") if element == "name" else (element,)
    assert rank(key, "gp-connect") == rank(key, "hl7v2")
    person = _OnFile()
    person.states(GP, _patient(**{element: gp}))
    person.states(HOSPITAL, _patient(**{element: hospital}))  # as at a later moment
    assert person.patient is not None and person.patient[element] == hospital
    person.states(HOSPITAL_EARLIER, _patient(**{element: earlier}))  # loaded late
    assert person.patient[element] == hospital
    assert person.source(key) == HOSPITAL


def test_of_two_lower_sources_alike_the_later_loaded_stands_when_one_has_no_moment() -> None:
    person = _OnFile()
    person.states(HOME, _patient(address=[{"postalCode": "E8 1AA"}]))
    person.states(COUNCIL, _patient(address=[{"postalCode": "ZZ9 1AA"}]))
    assert person.patient is not None and person.patient["address"] == [{"postalCode": "ZZ9 1AA"}]
    person.states(HOME, _patient(address=[{"postalCode": "E8 1AA"}]))
    assert person.patient["address"] == [{"postalCode": "E8 1AA"}]


def test_a_gap_no_higher_source_filled_is_taken_from_a_lower_one() -> None:
    person = _OnFile()
    person.states(GP, _patient(name=_named("Thornbury")))
    given = person.states(
        COUNCIL, _patient(maritalStatus={"text": "Widowed"}, extension=[_ethnic("C")])
    )
    assert person.patient is not None
    assert person.patient["maritalStatus"] == {"text": "Widowed"}
    assert person.patient["extension"] == [_ethnic("C")]
    assert set(given) >= {"maritalStatus", f"extension:{ETHNIC_URL}"}
    # And a higher source's later statement of it replaces the lower one's.
    person.states(HOSPITAL, _patient(extension=[_ethnic("A")]))
    assert person.patient["extension"] == [_ethnic("A")]


def test_the_registered_practice_and_ethnic_category_are_the_practices_first() -> None:
    assert rank(PRACTICE, "gp-connect") > rank(PRACTICE, "hl7v2") > rank(PRACTICE, "care-home")
    assert rank(ETHNIC_CATEGORY, "gp-connect") > rank(ETHNIC_CATEGORY, "hl7v2")
    assert rank(PRACTICE, "care-home") == rank(PRACTICE, "cld")
    person = _OnFile()
    person.states(
        GP,
        _patient(
            generalPractitioner=[organisation("F84003", "Larkspur Medical Centre"), GP_DOCTOR],
            extension=[_ethnic("A")],
        ),
    )
    # A hospital later still, naming another practice and another category.
    later = Source("RKE", "hl7v2", "M9", "2026-06-01T00:00:00.000000Z")
    given = person.states(
        later, _patient(generalPractitioner=[organisation("F84777")], extension=[_ethnic("C")])
    )
    assert person.patient is not None
    assert person.patient["generalPractitioner"][0]["identifier"]["value"] == "F84003"
    assert person.patient["extension"] == [_ethnic("A")]
    assert set(given) == {NHS_SLOT}  # of what it said, only the NHS number stands as its
    assert person.source(PRACTICE) == GP and person.source(ETHNIC_CATEGORY) == GP


def test_the_gps_named_practice_survives_a_hospitals_bare_code() -> None:
    """The tester's case: the practice names itself and the GP; the
    hospital and the care home name the practice by its ODS code alone.
    The GP's names, display and reference stay."""
    named = [organisation("F84003", "Larkspur Medical Centre"), GP_DOCTOR]
    person = _OnFile()
    person.states(GP, _patient(generalPractitioner=named, extension=[_ethnic("A")]))
    person.states(HOSPITAL, _patient(generalPractitioner=[organisation("F84003")]))
    person.states(HOME, _patient(generalPractitioner=[organisation("F84003")]))
    assert person.patient is not None
    assert person.patient["generalPractitioner"] == named
    assert person.patient["extension"] == [_ethnic("A")]
    assert person.source(PRACTICE) == GP


def test_a_higher_source_naming_the_same_practice_by_code_keeps_what_is_known_of_it() -> None:
    """Without the practice's record, the hospital's bare code stands over
    the home's, but the home's name for the practice, and the GP it names,
    are not lost: the code says nothing new of them."""
    person = _OnFile()
    person.states(
        HOME, _patient(generalPractitioner=[organisation("F84003", "Larkspur"), GP_DOCTOR])
    )
    person.states(HOSPITAL, _patient(generalPractitioner=[organisation("F84003")]))
    assert person.patient is not None
    assert person.patient["generalPractitioner"] == [organisation("F84003", "Larkspur"), GP_DOCTOR]
    assert person.source(PRACTICE) == HOSPITAL
    # Another practice is another registration: nothing of the last is kept.
    person.states(
        Source("RKE", "hl7v2", "M2", "2026-04-01T00:00:00.000000Z"),
        _patient(generalPractitioner=[organisation("F84555")]),
    )
    assert person.patient["generalPractitioner"] == [organisation("F84555")]
    # And the practice's own record names its GPs as it now has them.
    person.states(
        GP_LATER, _patient(generalPractitioner=[organisation("F84555", "Elm"), GP_DOCTOR])
    )
    later = Source("F84555", "gp-connect", "gp-3", "2026-05-01T09:00:00.000000Z")
    person.states(later, _patient(generalPractitioner=[organisation("F84555")]))
    assert person.patient["generalPractitioner"] == [organisation("F84555", "Elm")]


def test_extensions_are_elements_by_their_url() -> None:
    other = {"url": "https://example.org/other", "valueString": "x"}
    person = _OnFile()
    person.states(GP, _patient(extension=[_ethnic("A")]))
    given = person.states(HOSPITAL, _patient(extension=[other, _ethnic("C")]))
    assert person.patient is not None
    assert person.patient["extension"] == [_ethnic("A"), other]
    assert given == {
        "extension:https://example.org/other": digest([other]),
        NHS_SLOT: digest({"system": NHS_NUMBER_SYSTEM, "value": NUMBER}),
    }


def test_identifiers_merge_one_per_system_and_value_their_extensions_by_url() -> None:
    """Every source's identifiers are kept; the NHS number's verification
    status is the NHS number's element, ranked as identity is."""
    person = _OnFile()
    person.states(
        HOSPITAL,
        {
            **_patient(),
            "identifier": [nhs_identifier(NUMBER, "01"), local_identifier("RKE", "H1")],
        },
    )
    person.states(
        HOME,
        {
            **_patient(),
            "identifier": [nhs_identifier(NUMBER, "03"), local_identifier("VM4X2", "RES-1")],
        },
    )
    assert person.patient is not None
    assert person.patient["identifier"] == [
        nhs_identifier(NUMBER, "01"),
        local_identifier("RKE", "H1"),
        local_identifier("VM4X2", "RES-1"),
    ]
    status = (
        "identifier",
        NHS_NUMBER_SYSTEM,
        NUMBER,
        nhs_identifier(NUMBER, "01")["extension"][0]["url"],
    )
    assert person.source(status) == HOSPITAL
    assert (
        person.source(("identifier", local_identifier("VM4X2", "RES-1")["system"], "RES-1")) == HOME
    )
    person.states(GP_LATER, {**_patient(), "identifier": [nhs_identifier(NUMBER, "02")]})
    assert person.patient["identifier"][0] == nhs_identifier(NUMBER, "02")
    assert person.source(status) == GP_LATER


def test_a_choice_is_one_element_whatever_its_type() -> None:
    person = _OnFile()
    person.states(HOME, _patient(deceasedBoolean=True))
    person.states(HOSPITAL, _patient(deceasedDateTime="2026-02-01T09:00:00Z"))
    assert person.patient is not None
    assert "deceasedBoolean" not in person.patient
    assert person.patient["deceasedDateTime"] == "2026-02-01T09:00:00Z"
    person.states(COUNCIL, _patient(deceasedBoolean=False))
    assert person.patient["deceasedDateTime"] == "2026-02-01T09:00:00Z"
    assert "deceasedBoolean" not in person.patient


def test_a_value_written_since_by_another_is_no_longer_the_sources() -> None:
    """A client rewrote the name through the API: the name on file is not
    the practice's, so it ranks as no source's and the home's replaces it."""
    person = _OnFile()
    person.states(GP, _patient(name=_named("Thornbury"), gender="female"))
    assert person.patient is not None
    person.patient["name"] = _named("Thornbury-Smith")
    rows = {e: (s, person.digests[e]) for e, s in person.sources.items()}
    assert "name" not in standing(person.patient, rows)
    assert standing(person.patient, rows)["gender"] == GP
    person.states(HOME, _patient(name=_named("Thornbury"), gender="male"))
    assert person.patient["name"] == _named("Thornbury")
    assert person.patient["gender"] == "female"


def test_a_first_statement_gives_every_element_it_states() -> None:
    resource = _patient(name=_named("A"), extension=[_ethnic("A")])
    merged = with_what_is_known(resource, None, GP, {})
    assert merged.resource == resource
    assert set(merged.given) == {"name:official", f"extension:{ETHNIC_URL}", NHS_SLOT}


def test_a_patient_is_its_elements() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p",
        "meta": {"security": [{"code": "R"}]},
        "extension": [_ethnic("A")],
        "identifier": [nhs_identifier(NUMBER, "01"), local_identifier("RKE", "H1")],
        "name": _named("A"),
        "multipleBirthInteger": 2,
        "generalPractitioner": [organisation("F84003")],
    }
    found = elements(resource)
    assert ("multipleBirth[x]",) in found and ("meta",) not in found
    assert composed(resource, found) == resource


def test_names_are_elements_by_their_use_so_a_known_as_name_stands_beside_the_official() -> None:
    """A care home's "known as" name is no rival of the practice's official
    name: it is kept beside it; its official name still ranks below."""
    person = _OnFile()
    person.states(GP, _patient(name=_named("Thornbury")))
    known_as = {"use": "usual", "given": ["Maggie"]}
    given = person.states(HOME, _patient(name=[{"use": "official", "family": "X"}, known_as]))
    assert person.patient is not None
    assert person.patient["name"] == [*_named("Thornbury"), known_as]
    assert "name:usual" in given and "name:official" not in given
    assert person.source(("name", "usual")) == HOME
    assert person.source(("name", "official")) == GP
