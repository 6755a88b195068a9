"""The code lists the mappings code with (``mappings/codelists``): each file is
a list that names its source and version, every code in it has words, and a
code a list lacks is kept without any."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest

from mappings.cld.items import ETHNICITIES
from mappings.codelists import BadCodeList, code_list, display, names, parse
from mappings.ukcore import ETHNIC_SYSTEM

UKCORE = "https://fhir.hl7.org.uk/CodeSystem"
# Each list, and the code system its codes are coded in.
SYSTEMS = {
    "admission-method": f"{UKCORE}/UKCore-AdmissionMethodEngland",
    "source-of-admission": f"{UKCORE}/UKCore-SourceOfAdmissionEngland",
    "discharge-method": f"{UKCORE}/UKCore-DischargeMethodEngland",
    "discharge-destination": f"{UKCORE}/UKCore-DischargeDestinationEngland",
    "ethnic-category": f"{UKCORE}/UKCore-EthnicCategoryEngland",
    "patient-class": "http://terminology.hl7.org/CodeSystem/v2-0004",
}


def _file(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(
        files("mappings.codelists").joinpath(f"{name}.json").read_text("utf-8")
    )
    return raw


def test_the_lists_held_are_the_ones_the_mappings_code_with() -> None:
    assert set(names()) == set(SYSTEMS)
    for name, system in SYSTEMS.items():
        assert code_list(name).system == system
    assert code_list("ethnic-category").system == ETHNIC_SYSTEM
    with pytest.raises(KeyError):
        code_list("marital-status")


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_every_file_loads_and_names_its_source_and_version(name: str) -> None:
    raw = _file(name)
    for field in ("name", "title", "subject", "system", "version", "date", "source"):
        assert isinstance(raw[field], str) and raw[field].strip(), field
    assert raw["name"] == name
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw["date"])
    assert raw["references"] and all(r.startswith("https://") for r in raw["references"])
    listed = code_list(name)
    assert (listed.version, listed.date, listed.source) == (
        raw["version"],
        raw["date"],
        raw["source"],
    )
    assert list(listed.displays) == [row["code"] for row in raw["codes"]]  # in the list's order


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_every_code_in_a_list_has_its_words(name: str) -> None:
    listed = code_list(name)
    assert listed.displays
    for code in listed.displays:
        words = display(name, code)
        assert words and words.strip(), code
        assert listed.concept(code) == {
            "coding": [{"system": listed.system, "code": code, "display": words}],
            "text": words,
        }


def test_the_codes_the_lists_were_checked_against() -> None:
    """A few rows as the NHS Data Dictionary and HL7 print them."""
    assert display("admission-method", "21") == (
        "Emergency Admission: Emergency Care Department or dental casualty department of the "
        "Health Care Provider"
    )
    assert display("source-of-admission", "85") == (
        "Non-NHS (other than Local Authority) run Care Home"
    )
    assert display("discharge-method", "4") == "Patient died"
    assert display("discharge-destination", "54") == "NHS run Care Home"
    assert display("ethnic-category", "A") == "White - British"
    assert display("ethnic-category", "99") == "Not known"
    assert display("patient-class", "I") == "Inpatient"
    # Not in the lists the files follow: the Dictionary's discharge method 2
    # was split into 6 and 7, and its newer source of admission 40 (penal
    # establishment) is not in UK Core's list of 2023.
    assert display("discharge-method", "2") is None
    assert display("source-of-admission", "40") is None


def test_a_code_a_list_lacks_is_kept_without_words() -> None:
    listed = code_list("admission-method")
    assert display("admission-method", "2E") is None
    assert listed.coding("2E") == {"system": listed.system, "code": "2E"}
    assert listed.concept("2E") == {
        "coding": [{"system": listed.system, "code": "2E"}],
        "text": (
            "Admission method code 2E: not in the NHS Data Dictionary admission method "
            "(hospital provider spell) list, version 1.0.1"
        ),
    }
    # The sender's own words for it come first; the list's never appear.
    sent = listed.concept("2E", "Emergency via GP out of hours")
    assert sent["text"].startswith("Emergency via GP out of hours (Admission method code 2E: ")
    assert "display" not in sent["coding"][0]


def test_the_discharge_lists_share_no_code() -> None:
    """PV1-36 is read as a discharge method or destination by its code,
    which holds only while no code is in both lists."""
    methods = set(code_list("discharge-method").displays)
    destinations = set(code_list("discharge-destination").displays)
    assert methods and destinations and not methods & destinations


def test_every_cld_ethnicity_is_a_code_of_the_nhs_list() -> None:
    listed = code_list("ethnic-category")
    assert ETHNICITIES.canonical == set(listed.displays)


def _drop(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw.pop(field)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_drop("source"), "'source' is missing"),
        (_drop("version"), "'version' is missing"),
        (lambda raw: raw.update(name="class"), "names itself"),
        (lambda raw: raw.update(references=["http://example.org"]), "https"),
        (lambda raw: raw.update(codes=[]), "list of rows"),
        (lambda raw: raw["codes"].append(dict(raw["codes"][0])), "code E is listed twice"),
        (lambda raw: raw["codes"][0].update(display=" "), "code E has no display"),
        (lambda raw: raw["codes"][0].update(code=" E"), "spaces around it"),
    ],
)
def test_a_file_that_is_not_a_list_is_refused(
    change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    raw = _file("patient-class")
    assert parse(raw, "patient-class").displays["E"] == "Emergency"
    change(raw)
    with pytest.raises(BadCodeList, match=reason):
        parse(raw, "patient-class")
