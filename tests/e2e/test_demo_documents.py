"""Every demo person's Red Bag and summary, built from the demo's sources
loaded through the real mappings: one row per fact, every organisation by
name, no raw HL7 code, and a Red Bag a crew can read on a phone.

The documents are built as a reader who may see everything, so that what a
narrower reader sees is a part of what is checked here."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from gateway import fhirjson
from gateway.demo.generate import DIRECTORY
from gateway.demo.launch import prepare
from gateway.documents.html import render
from gateway.documents.narrative import XHTML
from gateway.documents.sections import KINDS
from gateway.operations.documents import document
from gateway.store import Store, StoredVersion, open_store
from mappings.identity import NHS_NUMBER_SYSTEM
from tests.support.browser import chromium

PEOPLE, SEED, TODAY = 240, 11, date(2026, 12, 7)
BASE = "http://gateway.test/fhir"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"
# Sections where two rows for one fact would be a duplicate a reader must
# reconcile by eye; observations are one fact per measurement and moment.
ONE_ROW_PER_CONCEPT = {
    "medications",
    "allergies",
    "problems",
    "past-problems",
    "medicines-started",
    "medicines-stopped",
}
OBSERVATIONS = {"vital-signs", "baseline", "results"}
# How an HL7 v2 code would read had it no words: "admission method 21".
RAW_HL7 = re.compile(
    r"\b(admission method|admit source|source of admission|discharge (?:method|disposition|"
    r"destination)|patient class)\s*:?\s*\d+\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Built:
    nhs_number: str
    kind: str
    bundle: dict[str, Any]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    directory = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{directory}/gateway.db"
    store = open_store(url)
    store.migrate()
    prepare(store, url, directory / "sources", PEOPLE, SEED, TODAY, say=lambda line: None)
    yield store, directory / "sources"
    store.close()


def _everyone(version: StoredVersion) -> bool:
    return True


def _patients(store: Store) -> list[StoredVersion]:
    rows = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = 'Patient' AND deleted = 0", []
    )
    found = [store.read("Patient", str(res_id)) for (res_id,) in rows]
    return [v for v in found if v is not None and v.content is not None]


@pytest.fixture(scope="module")
def documents(demo: tuple[Store, Path]) -> list[Built]:
    store, _ = demo
    built = []
    for patient in _patients(store):
        assert patient.content is not None
        resource = fhirjson.loads(patient.content)
        nhs = next(
            (
                i["value"]
                for i in resource.get("identifier", [])
                if i["system"] == NHS_NUMBER_SYSTEM
            ),
            patient.res_id,
        )
        for kind in ("red-bag", "summary"):
            made = document(
                store,
                KINDS[kind],
                patient,
                visible=_everyone,
                readable=lambda res_type: True,
                base_url=BASE,
            )
            built.append(Built(nhs, kind, made.bundle))
    assert len(built) >= 2 * PEOPLE * 0.9
    return built


def _composition(bundle: dict[str, Any]) -> dict[str, Any]:
    composition: dict[str, Any] = bundle["entry"][0]["resource"]
    return composition


def _resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}": e["resource"]
        for e in bundle["entry"]
    }


def _rows(div: str) -> dict[str, list[str]]:
    """A section narrative's rows by their id: the text of each cell."""
    root = ET.fromstring(div)
    return {
        tr.get("id", ""): ["".join(td.itertext()) for td in tr.iter(f"{{{XHTML}}}td")]
        for tr in root.iter(f"{{{XHTML}}}tr")
        if tr.get("id")
    }


def _sections(bundle: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every section by the key its rows are named with, a section's parts
    (the latest hospital stay's medicines) after it."""
    parts = list(reversed(_composition(bundle)["section"]))
    while parts:
        section = parts.pop()
        parts.extend(reversed(section.get("section", [])))
        key = section["text"]["div"] and next(
            (
                e["extension"][0]["valueUrl"][1:].rsplit("-", 1)[0]
                for e in section.get("entry", [])
                if e.get("extension")
            ),
            "",
        )
        yield key, section


def _codes(resource: dict[str, Any], resources: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """The codes a medicine, problem or allergy entry names its concept by."""
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    reference = (resource.get("medicationReference") or {}).get("reference")
    if reference and reference in resources:
        concept = resources[reference].get("code") or {}
    return {(c.get("system", ""), c["code"]) for c in concept.get("coding", []) if c.get("code")}


def test_no_document_shows_one_medicine_problem_allergy_or_observation_twice(
    documents: list[Built],
) -> None:
    shown = 0
    for built in documents:
        resources = _resources(built.bundle)
        for key, section in _sections(built.bundle):
            rows = _rows(section["text"]["div"])
            if key in ONE_ROW_PER_CONCEPT:
                names = [cells[0].lower() for cells in rows.values()]
                assert len(names) == len(set(names)), (built.nhs_number, built.kind, names)
                # And by code: the entries of two rows name no concept in common.
                codes_of_row: dict[str, set[tuple[str, str]]] = {}
                for entry in section.get("entry", []):
                    row = entry["extension"][0]["valueUrl"][1:]
                    codes_of_row.setdefault(row, set()).update(
                        _codes(resources[entry["reference"]], resources)
                    )
                seen: set[tuple[str, str]] = set()
                for codes in codes_of_row.values():
                    assert not codes & seen, (built.nhs_number, key, codes & seen)
                    seen |= codes
                shown += len(rows)
            elif key in OBSERVATIONS:
                readings = [(cells[0].lower(), cells[2]) for cells in rows.values()]
                assert len(readings) == len(set(readings)), (built.nhs_number, readings)
                shown += len(rows)
    assert shown > PEOPLE  # the check looked at something


def test_every_document_is_valid_fhir_r4(documents: list[Built]) -> None:
    """Structure, bindings and every invariant of R4's definitions (the
    gateway also refuses to serve one that is not: test_documents)."""
    for built in documents:
        assert validate_resource(built.bundle, "Bundle") == [], built.nhs_number


def test_every_source_stays_an_entry_linked_to_a_row_that_exists(documents: list[Built]) -> None:
    for built in documents:
        bundle_urls = {e["fullUrl"] for e in built.bundle["entry"]}
        for _, section in _sections(built.bundle):
            rows = _rows(section["text"]["div"])
            for entry in section.get("entry", []):
                assert f"{BASE}/{entry['reference']}" in bundle_urls
                assert entry["extension"][0]["valueUrl"][1:] in rows


def test_every_organisation_shown_has_a_name_and_no_hl7_code_is_raw(
    demo: tuple[Store, Path], documents: list[Built]
) -> None:
    _, sources = demo
    with (sources / DIRECTORY).open(encoding="utf-8") as stream:
        codes = [row["ods_code"] for row in csv.DictReader(stream)]
    bare = re.compile(r"(?<!\()\b(" + "|".join(map(re.escape, codes)) + r")\b")
    for built in documents:
        composition = _composition(built.bundle)
        texts = [composition["text"]["div"], *(s["text"]["div"] for s in composition["section"])]
        page = render(built.bundle)
        for text in [*texts, page]:
            words = " ".join(ET.fromstring(text).itertext()) if text.startswith("<div") else text
            assert "not in the directory" not in words, built.nhs_number
            assert not bare.search(words), (built.nhs_number, bare.search(words))
            assert not RAW_HL7.search(words), (built.nhs_number, RAW_HL7.search(words))
        for resource in _resources(built.bundle).values():
            if resource["resourceType"] != "Encounter":
                continue
            hospitalization = resource.get("hospitalization", {})
            coded = [
                resource.get("class", {}),
                *hospitalization.get("admitSource", {}).get("coding", []),
                *hospitalization.get("dischargeDisposition", {}).get("coding", []),
                *(
                    c
                    for extension in [
                        *resource.get("extension", []),
                        *hospitalization.get("extension", []),
                    ]
                    for c in extension.get("valueCodeableConcept", {}).get("coding", [])
                ),
            ]
            for coding in coded:
                if coding.get("code"):
                    assert coding.get("display"), (built.nhs_number, coding)


def test_a_resident_back_from_hospital_has_the_stay_and_its_medicines_changed(
    documents: list[Built],
) -> None:
    """The demo shows issue 27's round trip: a Red Bag whose latest stay is
    a discharge with medicines started (the GP's record of what the
    hospital began) and one with a medicine the hospital stopped."""
    found: dict[str, int] = {}
    for built in documents:
        if built.kind != "red-bag":
            continue
        for key, section in _sections(built.bundle):
            if key in ("hospital-stay", "medicines-started", "medicines-stopped"):
                found[key] = found.get(key, 0) + 1
                if key == "hospital-stay":
                    assert "Discharged to: " in section["text"]["div"] or (
                        "In hospital since" in section["text"]["div"]
                    )
    assert found.get("medicines-started") and found.get("medicines-stopped"), found


def test_a_red_bag_on_a_phone_shows_the_dnacpr_and_allergies_on_its_first_screen(
    demo: tuple[Store, Path], documents: list[Built]
) -> None:
    from selenium.webdriver.common.by import By

    # The demo's Red Bag story: a care-home resident with a DNACPR decision.
    red_bags = [
        b for b in documents if b.kind == "red-bag" and "Not for attempted CPR" in render(b.bundle)
    ]
    assert red_bags
    richest = max(red_bags, key=lambda b: len(b.bundle["entry"]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "red-bag-phone.html"
    page.write_text(render(richest.bundle), encoding="utf-8")
    driver: Any = chromium(390, 844, phone=True)
    try:
        driver.get(page.as_uri())
        height = driver.execute_script("return window.innerHeight")
        banner = driver.find_element(By.CSS_SELECTOR, ".dnacpr")
        allergies = driver.find_element(
            By.XPATH, "//section[.//span[text()='Allergies and intolerances']]"
        )
        driver.save_screenshot(str(ARTIFACTS / "red-bag-phone.png"))
        for element in (banner, allergies):
            box = driver.execute_script("return arguments[0].getBoundingClientRect()", element)
            assert box["top"] >= 0 and box["bottom"] <= height, (element.text, box, height)
        assert "NOT FOR ATTEMPTED CPR" in banner.text.upper()
    finally:
        driver.quit()
