"""GP Connect structured records: the refusals, the key of a response's
version, and the mapping of the STU3 Bundle to UK Core shaped R4 resources,
against golden files.

``UPDATE_GOLDEN=1 pytest tests/unit/mappings/test_gpconnect.py`` rewrites
the ``*.expected.json`` files from the mapper; read the diff before keeping
it. Golden files hold each id's basis (the id before ids were keyed,
``mappings.identity``); tests/unit/test_keyed_ids.py checks that the keyed
ids are those bases keyed.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import RESOURCES
from conformance.validation import validate_resource
from consent.engine import decide
from consent.model import Person, Requester, ResourceFacts
from consent.parse import instant, parse_consent
from mappings.gpconnect import map_structured_record, record_key
from mappings.identity import NHS_NUMBER_SYSTEM, id_basis, mapped_id
from mappings.jsonrecords import read_json_records
from mappings.ukcore import ODS, Unmappable
from tests.support.ids import unkeyed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpconnect"
GOLDEN = ("structured-rich", "structured-minimal", "structured-dissent")
PRACTICE = "F84003"
SNOMED = "http://snomed.info/sct"
CCSI = "https://fhir.nhs.uk/Id/cross-care-setting-identifier"
UK_EXT = "https://fhir.hl7.org.uk/StructureDefinition"
CARECONNECT = "https://fhir.hl7.org.uk/STU3/StructureDefinition"
SHARING_REFUSED, SHARING_GIVEN, THIRD_PARTY = "416409005", "417528008", "320011000000108"

Json = dict[str, Any]


def bundle(name: str) -> Json:
    loaded: Json = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return loaded


def mapped(obj: Json, source: str = PRACTICE) -> list[Json]:
    return map_structured_record(obj, source).resources


def of_type(resources: list[Json], res_type: str) -> list[Json]:
    return [r for r in resources if r["resourceType"] == res_type]


def by_identifier(resources: list[Json], value: str) -> Json:
    (found,) = [
        r for r in resources if any(i.get("value") == value for i in r.get("identifier", []))
    ]
    return found


def codes(element: Json) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in element.get("coding", [])}


def extension(element: Json, url: str) -> list[Json]:
    return [e for e in element.get("extension", []) if e["url"] == url]


def refusal(obj: Any, source: str = PRACTICE) -> str:
    with pytest.raises(Unmappable) as caught:
        map_structured_record(obj, source)
    return str(caught.value)


def references(value: Any) -> Iterator[Json]:
    """Every Reference in a resource, extensions included: an object with a
    ``reference``, or with nothing but an ``identifier`` and ``display``."""
    if isinstance(value, dict):
        if "reference" in value or (value and set(value) <= {"identifier", "display"}):
            yield value
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def rich() -> list[Json]:
    return mapped(bundle("structured-rich"))


def sharing_entry(
    entry_id: str, code: str, effective: str | None, issued: str | None = None, **more: Any
) -> Json:
    """An uncategorised-data entry of the dissent fixture's person."""
    resource: Json = {
        "resourceType": "Observation",
        "id": entry_id,
        "identifier": [{"system": CCSI, "value": f"sharing-{entry_id}"}],
        "status": "final",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": "Patient/pat-21"},
        **more,
    }
    if effective is not None:
        resource["effectiveDateTime"] = effective
    if issued is not None:
        resource["issued"] = issued
    return {"resource": resource}


def withdrawn() -> Json:
    """The dissent fixture with consent given again after the refusal."""
    obj = bundle("structured-dissent")
    obj["entry"].append(
        sharing_entry("given-again", SHARING_GIVEN, "2025-06-03", "2025-06-03T14:05:00+01:00")
    )
    return obj


def ended_contained() -> Json:
    """The minimal record with its allergy contained in an "Ended
    allergies" List, as early GP Connect responses sent resolved ones."""
    obj = bundle("structured-minimal")
    allergy = obj["entry"].pop(3)["resource"]
    allergy["id"] = "resolved-1"
    del allergy["meta"]
    listing = obj["entry"][2]["resource"]
    listing["code"]["coding"][0].update(code="1103671000000101", display="Ended allergies")
    listing["contained"] = [allergy]
    listing["entry"] = [{"item": {"reference": "#resolved-1"}}]
    return obj


# Golden files


@pytest.mark.parametrize("name", GOLDEN)
def test_maps_to_the_golden_resources(name: str) -> None:
    """The mapping of each example response is the reviewed expected output."""
    with unkeyed():
        resources = mapped(bundle(name))
    text = json.dumps(resources, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    expected = FIXTURES / f"{name}.expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text, "utf-8")
    assert text == expected.read_text("utf-8")


def ndjson_records() -> list[tuple[str, Json | str]]:
    with (FIXTURES / "structured-records.ndjson").open("rb") as stream:
        return list(read_json_records(stream))


def valid_examples() -> list[Json]:
    found = [bundle(name) for name in GOLDEN] + [ended_contained(), withdrawn()]
    return found + [obj for _, obj in ndjson_records()[:2] if isinstance(obj, dict)]


def test_every_resource_is_valid_fhir_r4_of_a_type_the_gateway_serves() -> None:
    """Every resource of every valid example passes the gateway's own R4
    validation, and is of a type the registry routes."""
    for obj in valid_examples():
        for resource in mapped(obj):
            assert resource["resourceType"] in RESOURCES
            assert validate_resource(resource, resource["resourceType"]) == [], resource


def test_the_rich_record_covers_every_clinical_area() -> None:
    """The rich example maps to every kind of resource the mapping writes,
    the Patient first and the headings' Lists last."""
    resources = rich()
    assert resources[0]["resourceType"] == "Patient"
    kinds = {r["resourceType"] for r in resources}
    assert kinds == {
        "Patient",
        "Organization",
        "Location",
        "Practitioner",
        "PractitionerRole",
        "Medication",
        "AllergyIntolerance",
        "Condition",
        "MedicationStatement",
        "MedicationRequest",
        "Immunization",
        "Encounter",
        "Observation",
        "DiagnosticReport",
        "ServiceRequest",
        "DocumentReference",
        "List",
    }
    assert len(of_type(resources, "Observation")) == 6
    assert resources[-1]["resourceType"] == "List"


# Headings and their warnings

WARNING_URL = f"{UK_EXT}/Extension-UKCore-ListWarningCode"
WARNING_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListWarningCode"
GPC_WARNING = (
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1"
)


def heading(resources: list[Json], code: str) -> Json:
    (found,) = [r for r in of_type(resources, "List") if r["code"]["coding"][0]["code"] == code]
    return found


def warnings(listing: Json) -> list[str]:
    return [
        coding["code"]
        for found in listing.get("extension", [])
        if found["url"] == WARNING_URL
        for coding in found["valueCodeableConcept"]["coding"]
        if coding["system"] == WARNING_SYSTEM
    ]


def test_each_heading_is_a_list_of_its_items_with_the_gp_systems_warnings() -> None:
    """A reader must know a heading is incomplete: confidential items left
    out, items awaiting filing. The warnings are UK Core's, each once, with
    the GP system's words kept as notes; the entries name the items carried
    over, a consultation by its Encounter."""
    resources = rich()
    present = {f"{r['resourceType']}/{r['id']}" for r in resources}
    problems = heading(resources, "717711000000103")
    assert warnings(problems) == ["confidential-items"]
    assert problems["note"][0]["text"].startswith("Items excluded due to confidentiality")
    assert {"status": "current", "mode": "snapshot"}.items() <= problems.items()
    assert problems["subject"] == {"reference": f"Patient/{resources[0]['id']}"}
    assert [e["item"]["reference"].split("/")[0] for e in problems["entry"]] == ["Condition"] * 2
    medications = heading(resources, "933361000000108")
    assert warnings(medications) == ["data-awaiting-filing"]  # sent twice, kept once
    consultations = heading(resources, "1149501000000101")
    assert [e["item"]["reference"].split("/")[0] for e in consultations["entry"]] == ["Encounter"]
    assert warnings(heading(resources, "886921000000105")) == []
    for listing in of_type(resources, "List"):
        assert all(e["item"]["reference"] in present for e in listing.get("entry", []))
    # The consultation's own structure (its topics and categories) is not a heading.
    assert len(of_type(resources, "List")) == 9


def test_a_heading_is_one_list_per_person_and_practice_whatever_the_response() -> None:
    """GP Connect's List ids are not persistent: the heading's code keys it,
    so a later response's heading replaces the earlier one."""
    obj = bundle("structured-rich")
    for entry in obj["entry"]:
        if entry["resource"]["resourceType"] == "List":
            entry["resource"]["id"] = "renamed-" + entry["resource"]["id"]
            entry["fullUrl"] = "urn:uuid:" + entry["resource"]["id"]
    before = {r["id"] for r in of_type(rich(), "List")}
    assert {r["id"] for r in of_type(mapped(obj), "List")} == before


def test_an_empty_heading_keeps_its_reason_and_a_warning_on_nothing_is_kept() -> None:
    """A heading with nothing recorded says so (UK Core's empty reason); a
    heading whose only warning is that the record is in transit is kept
    though it names nothing, so the reader knows to ask."""
    obj = bundle("structured-rich")
    for entry in obj["entry"]:
        listing = entry["resource"]
        if listing.get("id") == "list-immunisations":
            listing.pop("entry")
            listing["emptyReason"] = {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1",
                        "code": "no-content-recorded",
                        "display": "No Content Recorded",
                    }
                ]
            }
            listing["note"] = [{"text": "Information not available"}]
        if listing.get("id") == "list-referrals":
            listing["entry"] = [{"item": {"reference": "Specimen/not-carried"}}]
            listing["extension"] = [{"url": GPC_WARNING, "valueCode": "data-in-transit"}]
        if listing.get("id") == "list-investigations":
            listing["entry"] = [{"item": {"reference": "Specimen/not-carried"}}]
    resources = mapped(obj)
    immunisations = heading(resources, "1102181000000102")
    assert "entry" not in immunisations
    assert immunisations["emptyReason"]["coding"][0] == {
        "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListEmptyReasonCode",
        "code": "no-content-recorded",
        "display": "No Content Recorded",
    }
    referrals = heading(resources, "792931000000107")
    assert warnings(referrals) == ["data-in-transit"] and "entry" not in referrals
    # Naming only what is not carried over, with nothing to warn of: not kept.
    assert not [
        r for r in of_type(resources, "List") if r["code"]["coding"][0]["code"] == "887191000000108"
    ]
    for resource in resources:
        assert validate_resource(resource, resource["resourceType"]) == [], resource


# Ids and references


def test_ids_are_deterministic_and_do_not_depend_on_the_order_of_entries() -> None:
    """Mapping the same response twice, or with its entries reversed, gives
    the same resources with the same ids."""
    first = rich()
    assert rich() == first
    reversed_bundle = bundle("structured-rich")
    reversed_bundle["entry"].reverse()
    again = mapped(reversed_bundle)
    key = json.dumps
    assert sorted(map(key, again)) == sorted(map(key, first))
    assert len({(r["resourceType"], r["id"]) for r in first}) == len(first)


def test_a_later_response_updates_the_same_resources() -> None:
    """Ids come from business identifiers, not the logical ids a GP system
    may change between responses: a later response with new logical ids and
    a new version is another record key but lands on the same resources."""
    later = bundle("structured-rich")
    later["meta"]["lastUpdated"] = "2025-12-01T08:00:00+00:00"
    text = json.dumps(later).replace('"obs-bp"', '"obs-bp-v2"').replace("/obs-bp", "/obs-bp-v2")
    later = json.loads(text)
    assert record_key(later) != record_key(bundle("structured-rich"))
    assert {r["id"] for r in mapped(later)} == {r["id"] for r in rich()}
    value = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c61"
    blood_pressure = by_identifier(mapped(later), value)
    assert blood_pressure["id"] == mapped_id(PRACTICE, "Observation", f"{CCSI}|{value}")


def test_the_patient_is_the_one_every_source_shares() -> None:
    """The Patient's id comes from the NHS number alone, as the hospital
    feed's does, so both sources' records meet."""
    patient = rich()[0]
    assert patient["id"] == mapped_id("NHS", "Patient", "9990000042")


def test_every_reference_resolves_within_the_output_or_only_identifies() -> None:
    """A reference links to a resource of the output; one to something not
    carried over (a Specimen, a List, an organisation outside the response)
    keeps only an identifier or words; none keeps an STU3 id."""
    for obj in valid_examples():
        resources = mapped(obj)
        present = {f"{r['resourceType']}/{r['id']}" for r in resources}
        for resource in resources:
            for found in references(resource):
                if "reference" in found:
                    assert found["reference"] in present, (resource["id"], found)
                else:
                    assert set(found) <= {"identifier", "display"}, found


def test_references_to_what_is_not_carried_keep_what_identifies_it() -> None:
    """A Specimen (not a type the gateway serves) is named by its
    identifier and type; a recorder outside the response by its display; a
    reference with nothing to show goes."""
    report = of_type(rich(), "DiagnosticReport")[0]
    assert report["specimen"] == [
        {
            "identifier": {"system": CCSI, "value": "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d72"},
            "display": "Blood specimen",
        }
    ]
    minimal = mapped(bundle("structured-minimal"))
    allergy = of_type(minimal, "AllergyIntolerance")[0]
    assert allergy["recorder"] == {"display": "Dr Ama Mensah"}
    # The usual GP is outside the response and has no display: only the
    # practice remains.
    assert minimal[0]["generalPractitioner"] == [
        {"identifier": {"system": ODS, "value": PRACTICE}, "display": "Larkspur Medical Centre"}
    ]


# Record keys


def test_record_key_is_the_bundle_id_and_version_else_a_hash_of_the_content() -> None:
    """The key names one version of a response: its id and lastUpdated, or
    a hash that is the same for the same content and differs otherwise."""
    assert record_key(bundle("structured-rich")) == (
        "5b1d0f2a-7c3e-4e1b-9a6d-2f8c4e0b7a11@2025-11-03T09:15:27+00:00"
    )
    minimal = bundle("structured-minimal")
    key = record_key(minimal)
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    assert record_key(json.loads(json.dumps(minimal))) == key
    reordered = {k: minimal[k] for k in reversed(list(minimal))}
    assert record_key(reordered) == key
    minimal["entry"][0]["resource"]["birthDate"] = "1987-02-15"
    assert record_key(minimal) != key


# Refusals


def test_what_is_not_a_structured_record_is_refused_with_the_reason() -> None:
    """Not a Bundle, not valid STU3 (the element path named), no Patient or
    two, an NHS number that fails its check, another practice's record, a
    modifier extension, two resources sharing a business identifier."""
    assert "FHIR Bundle, not list" in refusal([])
    assert "FHIR Bundle, not 'Patient'" in refusal({"resourceType": "Patient"})

    broken = bundle("structured-minimal")
    broken["entry"][0]["resource"]["birthDate"] = "14/02/1987"
    message = refusal(broken)
    assert message.startswith("not a valid FHIR STU3 Bundle")
    assert "Bundle.entry[0].resource.birthDate" in message

    unknown = bundle("structured-minimal")
    unknown["entry"][3]["resource"]["resourceType"] = "Allergy"
    assert "Bundle.entry[3].resource.resourceType: 'Allergy'" in refusal(unknown)

    extra = bundle("structured-minimal")
    extra["entry"][3]["resource"]["assertedOn"] = "2019-07-03"
    assert "Bundle.entry[3].resource.assertedOn" in refusal(extra)

    no_patient = bundle("structured-minimal")
    del no_patient["entry"][0]
    assert refusal(no_patient) == "the response has no Patient"

    two = bundle("structured-minimal")
    two["entry"].append(copy.deepcopy(two["entry"][0]))
    assert "one person's, but it has 2" in refusal(two)

    bad_number = bundle("structured-minimal")
    bad_number["entry"][0]["resource"]["identifier"][0]["value"] = "9990000043"
    assert refusal(bad_number) == (
        "Bundle.entry[0].resource.identifier[0]: '9990000043' fails the Modulus 11 check"
    )

    no_number = bundle("structured-minimal")
    no_number["entry"][0]["resource"]["identifier"][0]["system"] = "https://example.org/mrn"
    assert "has no NHS number" in refusal(no_number)

    message = refusal(bundle("structured-minimal"), "Y12345")
    assert "registered at F84003" in message and "loaded as Y12345" in message

    modifier = bundle("structured-minimal")
    modifier["entry"][3]["resource"]["modifierExtension"] = [
        {"url": "https://example.org/negated", "valueBoolean": True}
    ]
    assert "Bundle.entry[3].resource.modifierExtension" in refusal(modifier)

    twins = bundle("structured-minimal")
    twin = copy.deepcopy(twins["entry"][3])
    twin["resource"]["id"] = "allergy-twin"
    twin["resource"]["code"]["text"] = "Peanut allergy (duplicate)"
    twins["entry"].append(twin)
    assert "identifiers must be unique" in refusal(twins)


def test_the_practice_is_compared_regardless_of_case() -> None:
    """The ODS code given on loading may be in lower case; ids are the same."""
    lower = mapped(bundle("structured-minimal"), "f84003")
    assert lower == mapped(bundle("structured-minimal"))
    assert lower[0]["generalPractitioner"][0]["identifier"] == {"system": ODS, "value": PRACTICE}


def test_the_ndjson_file_has_two_records_and_one_refusal() -> None:
    """The loader's example file: three responses, one per line; the third
    has an NHS number that fails Modulus 11 and is refused, saying so."""
    records = ndjson_records()
    assert [where for where, _ in records] == ["line 1", "line 2", "line 3"]
    objects = [obj for _, obj in records]
    assert all(isinstance(obj, dict) for obj in objects)
    first, second, third = (obj for obj in objects if isinstance(obj, dict))
    assert mapped(first)[0]["identifier"][0]["value"] == "9990000069"
    assert mapped(second)[0]["identifier"][0]["value"] == "9990000077"
    assert "fails the Modulus 11 check" in refusal(third)
    assert len({record_key(obj) for obj in (first, second, third)}) == 3


# The Patient


def test_the_patient_keeps_its_nhs_number_status_ethnicity_and_practice() -> None:
    """The NHS number with the verification status the response states, the
    GP system's own id, the ethnic category in UK Core's extension, and the
    practice by ODS code (then the usual GP) as generalPractitioner; the
    CareConnect registration details are not carried."""
    patient = rich()[0]
    nhs, local = patient["identifier"]
    assert nhs["system"] == NHS_NUMBER_SYSTEM and nhs["value"] == "9990000042"
    (status,) = nhs["extension"]
    assert status["url"] == f"{UK_EXT}/Extension-UKCore-NHSNumberVerificationStatus"
    assert status["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert local == {"system": f"urn:london-care-gateway:local-id:{PRACTICE}", "value": "pat-7"}
    (ethnic,) = patient["extension"]
    assert ethnic["url"] == f"{UK_EXT}/Extension-UKCore-EthnicCategory"
    assert codes(ethnic["valueCodeableConcept"]) == {
        (f"{UK_EXT.replace('StructureDefinition', 'CodeSystem')}/UKCore-EthnicCategoryEngland", "A")
    }
    practice, doctor = patient["generalPractitioner"]
    assert practice["identifier"] == {"system": ODS, "value": PRACTICE}
    gp = of_type(rich(), "Practitioner")[0]
    assert doctor == {"reference": f"Practitioner/{gp['id']}", "display": "Dr Samuel Achterberg"}
    assert "managingOrganization" not in patient
    assert (patient["gender"], patient["birthDate"]) == ("female", "1948-11-02")


def test_no_verification_status_is_claimed_when_none_is_sent() -> None:
    """The minimal response states no trace status: none is written."""
    patient = mapped(bundle("structured-minimal"))[0]
    assert patient["identifier"][0] == {"system": NHS_NUMBER_SYSTEM, "value": "9990000069"}


# Clinical areas


def test_an_ended_allergy_is_resolved_with_its_end_date_and_reason() -> None:
    """The allergy under "Ended allergies" is resolved; its end date and
    reason are UK Core's extension on clinicalStatus, and a note."""
    resources = rich()
    ended = by_identifier(resources, "3f0c2d64-1b7a-4e55-9c1e-6a0b8d2e4f02")
    status = ended["clinicalStatus"]
    assert codes(status) == {
        ("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "resolved")
    }
    (end,) = extension(status, f"{UK_EXT}/Extension-UKCore-AllergyIntoleranceEnd")
    assert end["extension"] == [
        {"url": "endDate", "valueDateTime": "2021-02-10"},
        {"url": "reasonEnded", "valueString": "Tolerated hypoallergenic dressing without reaction"},
    ]
    assert ended["note"] == [
        {"text": "Ended 2021-02-10: Tolerated hypoallergenic dressing without reaction"}
    ]
    assert ended["recordedDate"] == "2014-05-02T15:20:00+01:00"
    assert ended["category"] == ["environment"]
    active = by_identifier(resources, "3f0c2d64-1b7a-4e55-9c1e-6a0b8d2e4f01")
    assert codes(active["clinicalStatus"]) == {
        ("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")
    }
    assert codes(active["verificationStatus"]) == {
        ("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "unconfirmed")
    }
    assert active["patient"] == {"reference": f"Patient/{resources[0]['id']}"}


def test_an_allergy_contained_in_the_ended_list_is_carried_and_resolved() -> None:
    """An allergy contained in the "Ended allergies" List (and referenced as
    ``#id``) becomes a resource of its own, resolved whatever it said."""
    resources = mapped(ended_contained())
    (allergy,) = of_type(resources, "AllergyIntolerance")
    assert codes(allergy["clinicalStatus"]) == {
        ("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "resolved")
    }
    assert allergy["id"] == mapped_id(
        PRACTICE, "AllergyIntolerance", f"{CCSI}|91c3a5e7-0b2d-4f6a-8c1e-3d5f7a9b1c11"
    )


def test_a_problem_keeps_its_significance_and_its_links() -> None:
    """A problem's significance (major, minor) and its links to the actual
    problem, related content and related problems are kept as GP Connect's
    extensions, pointing at the mapped ids; a link to a List is dropped."""
    resources = rich()
    major = by_identifier(resources, "c4a7e1f2-0d3b-4a8e-b5c6-9e2f1a0b3c41")
    minor = by_identifier(resources, "c4a7e1f2-0d3b-4a8e-b5c6-9e2f1a0b3c42")
    significance = f"{CARECONNECT}/Extension-CareConnect-ProblemSignificance-1"
    assert extension(major, significance) == [{"url": significance, "valueCode": "major"}]
    assert extension(minor, significance) == [{"url": significance, "valueCode": "minor"}]
    actual = by_identifier(resources, "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c62")
    (link,) = extension(major, f"{CARECONNECT}/Extension-CareConnect-ActualProblem-1")
    assert link["valueReference"] == {"reference": f"Observation/{actual['id']}"}
    statement = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b10")
    (content,) = extension(major, f"{CARECONNECT}/Extension-CareConnect-RelatedClinicalContent-1")
    assert content["valueReference"] == {"reference": f"MedicationStatement/{statement['id']}"}
    (child,) = extension(major, f"{CARECONNECT}/Extension-CareConnect-RelatedProblemHeader-1")
    assert child["extension"] == [
        {"url": "type", "valueCode": "child"},
        {"url": "target", "valueReference": {"reference": f"Condition/{minor['id']}"}},
    ]
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    assert codes(major["clinicalStatus"]) == {(clinical, "active")}
    assert codes(minor["clinicalStatus"]) == {(clinical, "inactive")}
    assert minor["abatementDateTime"] == "2016-03-14"
    assert major["recordedDate"] == "2016-03-14T10:42:00Z"
    assert codes(major["category"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")
    }


def test_medication_keeps_the_plan_its_issues_and_the_last_issue_date() -> None:
    """The statement is basedOn the plan and keeps its last issue date; the
    plan's repeats are UK Core's repeat information and numberOfRepeatsAllowed;
    the issue is an order basedOn the plan; the prescription type is
    courseOfTherapyType; dm+d codes keep the SNOMED CT system."""
    resources = rich()
    statement = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b10")
    plan = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b11")
    issue = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b12")
    assert statement["basedOn"] == [{"reference": f"MedicationRequest/{plan['id']}"}]
    (last,) = extension(statement, f"{UK_EXT}/Extension-UKCore-MedicationStatementLastIssueDate")
    assert last["valueDateTime"] == "2025-10-06"
    assert statement["dosage"] == [
        {"text": "One tablet once a day", "patientInstruction": "Take in the morning"}
    ]
    assert (plan["intent"], issue["intent"]) == ("plan", "order")
    assert issue["basedOn"] == [{"reference": f"MedicationRequest/{plan['id']}"}]
    (repeat,) = extension(plan, f"{UK_EXT}/Extension-UKCore-MedicationRepeatInformation")
    assert repeat["extension"] == [
        {"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 2},
        {"url": "authorisationExpiryDate", "valueDateTime": "2026-03-21"},
    ]
    assert plan["dispenseRequest"]["numberOfRepeatsAllowed"] == 6
    assert plan["dispenseRequest"]["quantity"] == {"value": 28, "unit": "tablet"}
    assert codes(plan["courseOfTherapyType"]) == {
        ("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "continuous")
    }
    (medication,) = [
        m
        for m in of_type(resources, "Medication")
        if statement["medicationReference"] == {"reference": f"Medication/{m['id']}"}
    ]
    assert codes(medication["code"]) == {(SNOMED, "319283006")}
    assert plan["medicationReference"] == issue["medicationReference"]


def test_dosage_dose_moves_into_dose_and_rate_and_status_reasons_are_kept() -> None:
    """STU3's dose is R4's doseAndRate; the GP Connect status reason is R4's
    statusReason and the date it changed a note."""
    resources = rich()
    statement = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b20")
    (dose,) = statement["dosage"]
    assert dose["doseAndRate"] == [{"doseQuantity": {"value": 1, "unit": "capsule"}}]
    assert "doseQuantity" not in dose
    plan = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b21")
    assert plan["statusReason"] == {"text": "Course completed"}
    assert plan["note"] == [{"text": "Status changed on 2024-12-09"}]
    assert codes(plan["courseOfTherapyType"]) == {
        ("http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "acute")
    }


def test_the_same_medicine_is_one_medication() -> None:
    """Medications are keyed by what they say: two STU3 Medications of the
    same product are one R4 Medication, referenced by both users."""
    obj = bundle("structured-rich")
    entries = obj["entry"]
    twin = copy.deepcopy(next(e for e in entries if e["resource"]["id"] == "med-amlodipine"))
    twin["resource"]["id"] = "med-amlodipine-again"
    entries.append(twin)
    issue = next(e for e in entries if e["resource"]["id"] == "mr-amlodipine-issue-2")
    issue["resource"]["medicationReference"]["reference"] = "Medication/med-amlodipine-again"
    resources = mapped(obj)
    assert len(of_type(resources, "Medication")) == 2
    plan = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b11")
    issue_r4 = by_identifier(resources, "7b21e9a0-52c4-4d6b-8f3e-1c9a0e5d7b12")
    assert plan["medicationReference"] == issue_r4["medicationReference"]


def test_a_not_given_immunisation_is_not_done_with_its_reason() -> None:
    """STU3 ``notGiven`` is R4 status not-done, the reason statusReason; a
    given one keeps date, recorded date, procedure, performer and protocol."""
    resources = rich()
    declined = by_identifier(resources, "e9d1b7a3-6c2f-4f0a-8b1d-3a5c7e9f1b62")
    assert declined["status"] == "not-done"
    assert codes(declined["statusReason"]) == {(SNOMED, "591000119102")}
    assert declined["occurrenceDateTime"] == "2025-01-20T11:15:00Z"
    given = by_identifier(resources, "e9d1b7a3-6c2f-4f0a-8b1d-3a5c7e9f1b61")
    assert given["status"] == "completed" and "statusReason" not in given
    assert given["occurrenceDateTime"] == "2024-10-08T09:30:00+01:00"
    assert given["recorded"] == "2024-10-08T09:40:00+01:00"
    (procedure,) = extension(given, f"{UK_EXT}/Extension-UKCore-VaccinationProcedure")
    assert codes(procedure["valueCodeableConcept"]) == {(SNOMED, "822851000000102")}
    (performer,) = given["performer"]
    assert codes(performer["function"]) == {("http://terminology.hl7.org/CodeSystem/v2-0443", "AP")}
    assert given["protocolApplied"][0]["doseNumberPositiveInt"] == 1
    assert codes(given["reasonCode"][0]) == {(SNOMED, "171279008")}


def test_a_consultation_is_an_encounter_its_observations_point_at() -> None:
    """The consultation is a finished Encounter of class ambulatory (R4
    requires a class GP Connect does not send); its observations name it as
    encounter, with STU3's interpretation a list and its comment a note."""
    resources = rich()
    (encounter,) = of_type(resources, "Encounter")
    assert encounter["status"] == "finished"
    assert encounter["class"]["code"] == "AMB"
    blood_pressure = by_identifier(resources, "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c61")
    assert blood_pressure["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    assert codes(blood_pressure["interpretation"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "H")
    }
    assert blood_pressure["note"] == [{"text": "Sitting, left arm, after five minutes' rest"}]
    assert [c["valueQuantity"]["value"] for c in blood_pressure["component"]] == [152, 94]
    assert codes(blood_pressure["category"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
    }


def test_a_telephone_consultation_is_virtual() -> None:
    """The consultation type's words choose the class: telephone is VR."""
    obj = bundle("structured-rich")
    encounter = next(e for e in obj["entry"] if e["resource"]["id"] == "enc-1")
    encounter["resource"]["type"] = [{"text": "Telephone consultation"}]
    (mapped_encounter,) = of_type(mapped(obj), "Encounter")
    assert mapped_encounter["class"]["code"] == "VR"


def test_an_investigation_keeps_its_request_report_and_results() -> None:
    """The report is basedOn the request (now a ServiceRequest), its result
    the test group, whose members (STU3 related has-member) are hasMember."""
    resources = rich()
    report = by_identifier(resources, "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d73")
    request = by_identifier(resources, "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d71")
    group = by_identifier(resources, "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d74")
    members = [
        by_identifier(resources, value)
        for value in (
            "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d75",
            "b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d76",
        )
    ]
    assert request["resourceType"] == "ServiceRequest" and request["status"] == "completed"
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{request['id']}"}]
    assert report["result"] == [{"reference": f"Observation/{group['id']}"}]
    assert group["hasMember"] == [{"reference": f"Observation/{m['id']}"} for m in members]
    assert report["issued"] == "2025-09-17T14:02:00+01:00"
    lab = by_identifier(resources, "YZ901")
    assert report["performer"] == [{"reference": f"Organization/{lab['id']}"}]
    assert codes(report["category"][0]) == {("http://terminology.hl7.org/CodeSystem/v2-0074", "HM")}
    assert members[0]["valueQuantity"]["value"] == 128
    assert members[1]["note"] == [{"text": "Filed by Dr Achterberg: normal, no action"}]


def test_a_referral_is_a_service_request_marked_as_a_referral() -> None:
    """ReferralRequest is ServiceRequest: the service requested its code, a
    referral category, the recipient (outside the response) its performer
    by ODS code, the requester's agent its requester, the description a note."""
    resources = rich()
    referral = by_identifier(resources, "d0e1f2a3-b4c5-4d6e-8f7a-9b0c1d2e3f81")
    assert referral["resourceType"] == "ServiceRequest"
    assert (referral["status"], referral["intent"], referral["priority"]) == (
        "active",
        "order",
        "routine",
    )
    assert codes(referral["category"][0]) == {(SNOMED, "3457005")}
    assert codes(referral["code"]) == {(SNOMED, "183519002")}
    assert referral["performer"] == [
        {
            "identifier": {"system": ODS, "value": "YZ902"},
            "display": "Riverside Hospital Cardiology",
        }
    ]
    gp = of_type(resources, "Practitioner")[0]
    assert referral["requester"] == {"reference": f"Practitioner/{gp['id']}"}
    problem = by_identifier(resources, "c4a7e1f2-0d3b-4a8e-b5c6-9e2f1a0b3c41")
    assert referral["reasonReference"] == [{"reference": f"Condition/{problem['id']}"}]
    assert {i["system"] for i in referral["identifier"]} == {CCSI, "https://fhir.nhs.uk/Id/UBRN"}
    assert referral["note"] == [
        {"text": "Resistant hypertension despite two agents; please assess for secondary causes."}
    ]


def test_a_document_reference_is_reshaped_for_r4_and_keeps_its_labels() -> None:
    """``indexed`` is ``date``, ``class`` a category, ``created`` the
    attachment's creation; context.related a Reference to the referral; the
    response's NOPAT label is kept."""
    resources = rich()
    document = by_identifier(resources, "d0e1f2a3-b4c5-4d6e-8f7a-9b0c1d2e3f82")
    assert document["date"] == "2025-09-15T11:02:33+01:00"
    assert document["category"] == [{"text": "Correspondence"}]
    (content,) = document["content"]
    assert content["attachment"]["creation"] == "2025-09-15T10:50:00+01:00"
    assert content["attachment"]["contentType"] == "application/pdf"
    referral = by_identifier(resources, "d0e1f2a3-b4c5-4d6e-8f7a-9b0c1d2e3f81")
    assert document["context"]["related"] == [{"reference": f"ServiceRequest/{referral['id']}"}]
    (encounter,) = of_type(resources, "Encounter")
    assert document["context"]["encounter"] == [{"reference": f"Encounter/{encounter['id']}"}]
    assert [(s["system"], s["code"]) for s in document["meta"]["security"]] == [
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "NOPAT")
    ]
    assert "created" not in document and "indexed" not in document


def test_stu3_only_extensions_are_left_behind_and_description_ids_kept() -> None:
    """No CareConnect or GP Connect STU3 extension survives except the
    problem links; a SNOMED CT description id becomes HL7's extension and
    its term UK Core's."""
    resources = rich()

    def urls(value: Any) -> Iterator[str]:
        """The URLs of every extension, nested ones included."""
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "extension":
                    yield from (e["url"] for e in item)
                yield from urls(item)
        elif isinstance(value, list):
            for item in value:
                yield from urls(item)

    found = {url for resource in resources for url in urls(resource)}
    stu3 = {url for url in found if "STU3" in url}
    assert stu3 == {
        f"{CARECONNECT}/Extension-CareConnect-{name}-1"
        for name in ("ProblemSignificance", "ActualProblem", "RelatedClinicalContent")
    } | {f"{CARECONNECT}/Extension-CareConnect-RelatedProblemHeader-1"}
    allergy = by_identifier(resources, "3f0c2d64-1b7a-4e55-9c1e-6a0b8d2e4f01")
    (coding,) = allergy["code"]["coding"]
    assert coding["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/coding-sctdescid",
            "valueId": "151441000000114",
        },
        {
            "url": f"{UK_EXT}/Extension-UKCore-CodingSCTDescDisplay",
            "valueString": "Penicillin allergy",
        },
    ]


# The sharing preference for the local shared care record

NOW = instant(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
COUNCIL, HOSPITAL, AMBULANCE = "713", "RKE", "RRU"
CONSENT_ID = mapped_id(
    PRACTICE,
    "Consent",
    f"shared-record-preference|{id_basis('NHS', 'Patient', '9990000085')}",
)


def sharing_consents(obj: Json) -> list[Json]:
    return of_type(mapped(obj), "Consent")


def policy_of(consent: Json) -> Person:
    """The person as the consent rules see them with ``consent`` on file:
    cared for by the practice, a council and a hospital."""
    policy = parse_consent(consent, lambda reference: None)
    return Person(
        patient_id=consent["patient"]["reference"].removeprefix("Patient/"),
        relationships=frozenset({PRACTICE, COUNCIL, HOSPITAL}),
        consents=(policy,),
    )


def record_of(author: str, res_type: str = "Observation", **more: Any) -> ResourceFacts:
    return ResourceFacts(res_type=res_type, res_id="r1", author_ods=author, **more)


def test_a_refusal_is_an_active_dissent_from_sharing_altogether() -> None:
    """The latest entry refuses consent for upload to the local shared care
    record: one Consent (scope patient-privacy, category Patient Consent) by
    the person, at the practice, dated as the entry, whose provision denies
    with no actor, purpose or class; the consent rules can interpret it."""
    resources = mapped(bundle("structured-dissent"))
    (consent,) = of_type(resources, "Consent")
    patient = resources[0]
    assert resources[-1] is consent
    assert consent["id"] == CONSENT_ID
    assert consent["status"] == "active"
    assert codes(consent["scope"]) == {
        ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
    }
    assert [codes(c) for c in consent["category"]] == [{("http://loinc.org", "59284-0")}]
    assert consent["patient"] == {"reference": f"Patient/{patient['id']}"}
    assert consent["performer"] == [consent["patient"]]
    assert consent["organization"] == [
        {"identifier": {"system": ODS, "value": PRACTICE}, "display": "Larkspur Medical Centre"}
    ]
    assert consent["dateTime"] == "2024-02-12T10:15:00Z"
    assert "local shared care record" in consent["policyRule"]["text"].lower()
    assert consent["provision"] == {"type": "deny"}
    assert consent["text"]["status"] == "additional"
    assert "Refused consent for upload to local shared electronic record" in consent["text"]["div"]
    assert "416409005" in consent["text"]["div"]
    policy = parse_consent(consent, lambda reference: None)
    assert (policy.consent_id, policy.status) == (CONSENT_ID, "active")
    provision = policy.provision
    assert provision.type == "deny"
    assert not (provision.actors or provision.purposes or provision.classes or provision.codes)


def test_the_entries_stay_observations_as_they_were() -> None:
    """The preference's entries, and the third-party one, are carried as the
    Observations they are, whatever Consent they add up to."""
    resources = mapped(bundle("structured-dissent"))
    observations = {next(iter(codes(o["code"])))[1]: o for o in of_type(resources, "Observation")}
    assert set(observations) == {SHARING_REFUSED, SHARING_GIVEN, THIRD_PARTY}
    refused = observations[SHARING_REFUSED]
    assert refused["id"] == mapped_id(
        PRACTICE, "Observation", f"{CCSI}|f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a33"
    )
    assert refused["status"] == "final"
    assert refused["effectiveDateTime"] == "2024-02-12T10:15:00Z"
    assert observations[THIRD_PARTY]["note"] == [
        {"text": "Does not want her record shared with the private physiotherapy provider"}
    ]


def test_the_dissent_withholds_from_all_but_the_authors_and_not_in_an_emergency() -> None:
    """consent.engine reads the dissent as PRODUCT.md says: a council and a
    hospital caring for the person no longer see the GP's or each other's
    records; each still sees its own; an ambulance under ETREAT still sees
    them, as the dissent does not name ETREAT; and the Consent itself is
    shown to those caring for the person, so it can be withdrawn."""
    (consent,) = sharing_consents(bundle("structured-dissent"))
    person = policy_of(consent)
    council = Requester(COUNCIL, "council", "TREAT")
    hospital = Requester(HOSPITAL, "hospital", "TREAT")
    crew = Requester(AMBULANCE, "ambulance", "ETREAT")
    for requester, author in (
        (council, PRACTICE),
        (council, HOSPITAL),
        (hospital, PRACTICE),
        (hospital, COUNCIL),
        (Requester(PRACTICE, "gp-practice", "TREAT"), COUNCIL),
    ):
        decided = decide(requester, person, record_of(author), NOW)
        assert not decided.permit, (requester, author)
        assert (decided.rule, decided.consent_id, decided.provision) == (
            "consent",
            CONSENT_ID,
            "provision",
        )
    assert decide(council, person, record_of(COUNCIL), NOW).rule == "author"
    assert decide(Requester(PRACTICE, "gp-practice", "TREAT"), person, record_of(PRACTICE), NOW)
    for author in (PRACTICE, COUNCIL, HOSPITAL):
        emergency = decide(crew, person, record_of(author), NOW)
        assert (emergency.permit, emergency.rule) == (True, "emergency-access")
    policy_record = record_of(PRACTICE, "Consent", sharing_policy=True)
    shown = decide(council, person, policy_record, NOW)
    assert (shown.permit, shown.rule) == (True, "consent-record")


def test_consent_given_after_a_refusal_withdraws_the_dissent_on_the_same_consent() -> None:
    """A later response whose latest entry gives consent writes the same
    Consent, inactive and dated as that entry: what the earlier load wrote
    is withdrawn, and the rules are back to implied consent."""
    (consent,) = sharing_consents(withdrawn())
    assert consent["id"] == CONSENT_ID
    assert consent["status"] == "inactive"
    assert consent["dateTime"] == "2025-06-03"
    assert consent["provision"] == {"type": "deny"}
    words = consent["text"]["div"]
    assert "withdrawn" in words and "417528008" in words and "416409005" in words
    person = policy_of(consent)
    assert person.consents[0].status == "inactive"
    decided = decide(Requester(COUNCIL, "council", "TREAT"), person, record_of(PRACTICE), NOW)
    assert (decided.permit, decided.rule) == (True, "implied-consent")
    # Refused once more: the same Consent is active again.
    again = withdrawn()
    again["entry"].append(sharing_entry("refused-again", SHARING_REFUSED, "2025-09-01"))
    (consent,) = sharing_consents(again)
    assert (consent["id"], consent["status"], consent["dateTime"]) == (
        CONSENT_ID,
        "active",
        "2025-09-01",
    )


def test_consent_given_without_a_refusal_writes_no_consent() -> None:
    """Implied consent is the default: an entry giving consent with no
    refusal in the response writes no Consent (the entry is still an
    Observation); nor does a response without any entry, nor the third
    party entry alone."""
    obj = bundle("structured-dissent")
    obj["entry"] = [e for e in obj["entry"] if e["resource"]["id"] != "obs-lscr-refused"]
    obj["entry"][3]["resource"]["entry"].pop()
    resources = mapped(obj)
    assert of_type(resources, "Consent") == []
    assert len(of_type(resources, "Observation")) == 2
    for name in ("structured-rich", "structured-minimal"):
        assert sharing_consents(bundle(name)) == []


def test_the_latest_entry_decides_whatever_the_order_they_come_in() -> None:
    """Entries are ordered by their effective time (a period's start; a
    date is the start of that day in London), then the time issued, not by
    where they sit in the response; on a tie a refusal is the later; an
    entry entered in error does not count; an undated one is the oldest."""

    def status(*entries: Json) -> str | None:
        obj = bundle("structured-minimal")
        obj["entry"] += [copy.deepcopy(e) for e in entries]
        for entry in obj["entry"][4:]:
            entry["resource"]["subject"] = {"reference": "Patient/pat-11"}
        found = sharing_consents(obj)
        reversed_obj = copy.deepcopy(obj)
        reversed_obj["entry"][4:] = reversed(reversed_obj["entry"][4:])
        assert sharing_consents(reversed_obj) == found
        return found[0]["status"] if found else None

    refused = sharing_entry("r", SHARING_REFUSED, "2024-03-01T09:00:00+00:00")
    assert status(refused) == "active"
    assert status(refused, sharing_entry("g", SHARING_GIVEN, "2024-03-01T09:30:00+00:00")) == (
        "inactive"
    )
    assert status(refused, sharing_entry("g", SHARING_GIVEN, "2024-02-29")) == "active"
    # A date is the start of that day in London: 1 July starts at 23:00 UTC
    # on 30 June, before a refusal made at half past midnight on 1 July.
    summer = sharing_entry("r", SHARING_REFUSED, "2024-06-30T23:30:00+00:00")
    assert status(summer, sharing_entry("g", SHARING_GIVEN, "2024-07-01")) == "active"
    # The same moment: a refusal is taken as the later; the time issued breaks the tie first.
    assert status(refused, sharing_entry("g", SHARING_GIVEN, "2024-03-01T09:00:00Z")) == "active"
    assert (
        status(
            sharing_entry("r", SHARING_REFUSED, "2024-03-01", "2024-03-01T10:00:00+00:00"),
            sharing_entry("g", SHARING_GIVEN, "2024-03-01", "2024-03-01T11:00:00+00:00"),
        )
        == "inactive"
    )
    # A period's start; the time issued when there is no effective time.
    period = sharing_entry(
        "g", SHARING_GIVEN, None, effectivePeriod={"start": "2024-04-01T08:00:00Z"}
    )
    assert status(refused, period) == "inactive"
    issued = sharing_entry("g", SHARING_GIVEN, None, "2024-05-01T08:00:00Z")
    assert status(refused, issued) == "inactive"
    # Entered in error: as if it were not there.
    error = sharing_entry("g", SHARING_GIVEN, "2025-01-01")
    error["resource"]["status"] = "entered-in-error"
    assert status(refused, error) == "active"
    erroneous = copy.deepcopy(refused)
    erroneous["resource"]["status"] = "entered-in-error"
    assert status(erroneous) is None
    # An undated refusal is older than any dated entry; alone it still counts.
    undated = sharing_entry("r", SHARING_REFUSED, None)
    assert status(undated) == "active"
    assert status(undated, sharing_entry("g", SHARING_GIVEN, "2020-01-01")) == "inactive"


def test_the_consent_keeps_its_id_across_later_responses() -> None:
    """The Consent's id comes from the practice and the person, not from
    the entries' ids: a later response with new logical ids, or with the
    refusal under another identifier, lands on the same Consent; another
    person's does not."""
    later = json.loads(
        json.dumps(bundle("structured-dissent")).replace("obs-lscr-refused", "obs-lscr-9")
    )
    later["entry"][-1]["resource"]["identifier"][0]["value"] = "another-entry"
    assert [c["id"] for c in sharing_consents(later)] == [CONSENT_ID]
    other = bundle("structured-minimal")
    other["entry"].append(sharing_entry("r", SHARING_REFUSED, "2024-03-01"))
    other["entry"][-1]["resource"]["subject"] = {"reference": "Patient/pat-11"}
    (consent,) = sharing_consents(other)
    assert consent["id"] != CONSENT_ID
    assert consent["id"] == mapped_id(
        PRACTICE, "Consent", f"shared-record-preference|{id_basis('NHS', 'Patient', '9990000069')}"
    )
