"""Care-home records: the schema's refusals, the key of a record's version,
and the mapping to UK Core shaped resources, against golden files.

``UPDATE_GOLDEN=1 pytest tests/unit/mappings/test_carehome.py`` rewrites the
``*.expected.json`` files from the mapper; read the diff before keeping it.
Golden files hold each id's basis (the id before ids were keyed,
``mappings.identity``); tests/unit/test_keyed_ids.py checks that the keyed
ids are those bases keyed.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from mappings.carehome.record import map_care_home, record_key, validate_record
from mappings.carehome.times import london_instant
from mappings.identity import NHS_NUMBER_SYSTEM
from mappings.jsonrecords import read_json_records
from mappings.ukcore import Unmappable
from tests.support.ids import unkeyed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "carehome"
GOLDEN = ("winifred-maddox", "albert-nkemelu")
HOME = "VM4X2"
SNOMED = "http://snomed.info/sct"
CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"


def record(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return loaded


def rich() -> dict[str, Any]:
    return record("winifred-maddox")


def mapped(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return map_care_home(obj, HOME).resources


def of_type(resources: list[dict[str, Any]], res_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == res_type]


def codes(element: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in element.get("coding", [])}


def refusal(obj: dict[str, Any], source: str = HOME) -> str:
    with pytest.raises(Unmappable) as caught:
        map_care_home(obj, source)
    return str(caught.value)


# Golden files


@pytest.mark.parametrize("name", GOLDEN)
def test_maps_to_the_golden_resources(name: str) -> None:
    """The mapping of each example record is the reviewed expected output."""
    with unkeyed():
        resources = mapped(record(name))
    text = json.dumps(resources, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    expected = FIXTURES / f"{name}.expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text, "utf-8")
    assert text == expected.read_text("utf-8")


def ndjson_records() -> list[tuple[str, dict[str, Any] | str]]:
    with (FIXTURES / "export.ndjson").open("rb") as stream:
        return list(read_json_records(stream))


def valid_examples() -> list[dict[str, Any]]:
    found = [record(name) for name in GOLDEN]
    found += [obj for _, obj in ndjson_records()[:2] if isinstance(obj, dict)]
    return found


def test_every_resource_is_valid_fhir_r4() -> None:
    """Every resource of every valid example passes the gateway's own R4 validation."""
    for obj in valid_examples():
        for resource in mapped(obj):
            assert validate_resource(resource, resource["resourceType"]) == [], resource["id"]


def test_ids_are_deterministic_and_unique() -> None:
    """Mapping the same record twice gives the same resources; no id repeats."""
    for obj in valid_examples():
        first, second = mapped(obj), mapped(copy.deepcopy(obj))
        assert first == second
        keys = [(r["resourceType"], r["id"]) for r in first]
        assert len(keys) == len(set(keys))


def test_the_patient_comes_first_and_everything_refers_to_it() -> None:
    result = map_care_home(rich(), HOME)
    patient = result.resources[0]
    assert patient["resourceType"] == "Patient" and result.patient_id == patient["id"]
    subject = {"reference": f"Patient/{patient['id']}"}
    for resource in result.resources[1:]:
        assert subject in [resource.get(k) for k in ("subject", "patient")], resource["id"]


# The record's key and versions


def test_a_later_export_has_another_key_but_updates_the_same_resources() -> None:
    first = rich()
    later = rich()
    later["exportedAt"] = "2026-07-20T10:00:00+01:00"
    later["medications"][0]["dose"] = "One tablet once a day"
    assert record_key(first) == "PTH-RES-0412@2026-07-14T21:40:00+01:00"
    assert record_key(later) != record_key(first)
    before = {(r["resourceType"], r["id"]): r for r in mapped(first)}
    after = {(r["resourceType"], r["id"]): r for r in mapped(later)}
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [("MedicationStatement", statement_id(before, "Apixaban"))]


def statement_id(resources: dict[tuple[str, str], dict[str, Any]], name: str) -> str:
    (found,) = [
        res_id
        for (kind, res_id), r in resources.items()
        if kind == "MedicationStatement" and r["medicationCodeableConcept"]["text"].startswith(name)
    ]
    return found


def test_the_key_reads_one_moment_one_way_and_survives_a_broken_record() -> None:
    """The same moment with or without its offset is one export; a record
    that fails its checks still has a key for its rejection, or "" without an id."""
    with_offset = {"recordId": "R1", "exportedAt": "2026-01-20T09:00:00+00:00"}
    without = {"recordId": "R1", "exportedAt": "2026-01-20T09:00"}
    assert record_key(with_offset) == record_key(without) == "R1@2026-01-20T09:00:00+00:00"
    assert record_key({"recordId": "R1", "exportedAt": "yesterday"}) == "R1@yesterday"
    assert record_key({"recordId": "R1"}) == "R1"
    assert record_key({"exportedAt": "2026-01-20T09:00"}) == ""


# Refusals


def test_an_unknown_property_is_refused_with_its_path() -> None:
    obj = rich()
    obj["medications"][1]["rout"] = "oral"
    message = refusal(obj)
    assert "$.medications[1]" in message and "'rout' was unexpected" in message
    top = rich()
    top["favouriteColour"] = "green"
    assert "$: Additional properties are not allowed ('favouriteColour'" in refusal(top)


def test_a_value_outside_its_enum_is_refused_with_its_path() -> None:
    obj = rich()
    obj["medications"][0]["route"] = "by mouth"
    assert "$.medications[0].route: 'by mouth' is not one of" in refusal(obj)
    obj = rich()
    obj["baseline"]["consciousness"] = "Alert"
    assert "$.baseline.consciousness" in refusal(obj)


def test_a_value_of_the_wrong_type_is_refused_with_its_path() -> None:
    obj = rich()
    obj["baseline"]["pulse"] = "72"
    assert "$.baseline.pulse: '72' is not of type 'integer'" in refusal(obj)


def test_a_missing_required_property_is_refused_with_its_path() -> None:
    obj = rich()
    del obj["resident"]["name"]
    assert "$.resident: 'name' is a required property" in refusal(obj)
    obj = rich()
    del obj["allergies"][0]["reaction"]
    assert "$.allergies[0]: 'reaction' is a dependency of 'severity'" in refusal(obj)


def test_every_schema_error_is_named_not_just_the_first() -> None:
    obj = rich()
    obj["baseline"]["pulse"] = "72"
    obj["contacts"][2]["relationship"] = "pal"
    message = refusal(obj)
    assert "$.baseline.pulse" in message and "$.contacts[2].relationship" in message


def test_an_impossible_date_or_time_is_refused() -> None:
    obj = rich()
    obj["resident"]["birthDate"] = "1934-02-30"
    assert "$.resident.birthDate: '1934-02-30' is not a 'date'" in refusal(obj)
    obj = rich()
    obj["baseline"]["takenAt"] = "2026-07-01T25:10"
    assert "$.baseline.takenAt" in refusal(obj)
    obj = rich()
    obj["residence"]["endDate"] = "2023-09-01"
    assert "$.residence.endDate: 2023-09-01 is before startDate 2023-09-04" in refusal(obj)


def test_an_invalid_nhs_number_is_refused() -> None:
    """The third record of the NDJSON export has a number failing Modulus 11."""
    where, bad = ndjson_records()[2]
    assert where == "line 3" and isinstance(bad, dict)
    message = refusal(bad)
    assert "$.resident.nhsNumber" in message and "Modulus 11" in message
    assert record_key(bad) == "PTH-RES-1101@2026-02-03T07:15:00+00:00"


def test_a_record_with_neither_nhs_number_nor_resident_id_is_refused() -> None:
    obj = record("albert-nkemelu")
    del obj["resident"]["residentId"]
    assert "neither an NHS number" in refusal(obj)


def test_a_record_loaded_as_another_organisation_is_refused() -> None:
    message = refusal(rich(), "RKE")
    assert message == "$.careHome.odsCode names VM4X2, but the file is loaded as RKE"
    assert mapped(rich()) == map_care_home(rich(), "vm4x2").resources


def test_contradictions_are_refused() -> None:
    obj = rich()
    obj["noKnownAllergies"] = True
    assert "$.allergies[0]: an active allergy, but noKnownAllergies is true" in refusal(obj)
    obj = rich()
    obj["advanceDecisions"][0]["cprRecommendation"] = "attempt"
    assert "$.advanceDecisions[0].cprRecommendation" in refusal(obj)
    obj = rich()
    obj["advanceDecisions"][2]["cprRecommendation"] = "attempt"
    assert "not ADRT" in refusal(obj)


def test_two_items_that_would_be_one_resource_are_refused() -> None:
    obj = rich()
    for medicine in obj["medications"]:
        del medicine["id"]
    obj["medications"].append(dict(obj["medications"][0]))
    assert "$.medications[5] is the same item as $.medications[0]" in refusal(obj)
    validate_record(rich())  # the example as given is fine


# What the mapping says


def test_the_patient_carries_identity_names_and_practice() -> None:
    patient = mapped(rich())[0]
    nhs, local = patient["identifier"]
    assert (nhs["system"], nhs["value"]) == (NHS_NUMBER_SYSTEM, "9992345675")
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert local == {"system": "urn:london-care-gateway:local-id:VM4X2", "value": "RES-0412"}
    assert patient["name"][1] == {"use": "usual", "given": ["Winnie"]}
    assert patient["address"][0]["postalCode"] == "QQ1 4AB"
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "F84003"
    harold = ndjson_records()[0][1]
    assert isinstance(harold, dict)
    assert "extension" not in mapped(harold)[0]["identifier"][0]  # no status claimed


def test_the_stay_is_active_until_it_ends() -> None:
    obj = rich()
    (episode,) = of_type(mapped(obj), "EpisodeOfCare")
    assert episode["status"] == "active" and episode["period"] == {"start": "2023-09-04"}
    assert episode["managingOrganization"]["identifier"]["value"] == HOME
    (kind,) = episode["type"]
    assert kind["text"] == "Nursing care"
    assert kind["coding"][0]["code"] == "care-home-residence"
    obj["residence"]["endDate"] = "2026-07-15"
    (ended,) = of_type(mapped(obj), "EpisodeOfCare")
    assert ended["status"] == "finished"
    assert ended["period"] == {"start": "2023-09-04", "end": "2026-07-15"}
    assert ended["id"] == episode["id"]


def test_times_without_an_offset_are_london_time() -> None:
    """Summer times gain +01:00 (BST), winter times +00:00 (GMT); a given offset is kept."""
    assert london_instant("2026-07-01T09:10") == "2026-07-01T09:10:00+01:00"
    assert london_instant("2026-01-20T09:00:00") == "2026-01-20T09:00:00+00:00"
    assert london_instant("2026-07-01T09:10:00Z") == "2026-07-01T09:10:00+00:00"
    summer = of_type(mapped(rich()), "Observation")
    rate = next(o for o in summer if codes(o["code"]) >= {("http://loinc.org", "9279-1")})
    assert rate["effectiveDateTime"] == "2026-07-01T09:10:00+01:00"
    harold = ndjson_records()[0][1]
    assert isinstance(harold, dict)
    winter = mapped(harold)
    rate = next(
        o
        for o in of_type(winter, "Observation")
        if codes(o["code"]) >= {("http://loinc.org", "9279-1")}
    )
    assert rate["effectiveDateTime"] == "2026-02-02T08:30:00+00:00"
    (given,) = of_type(winter, "MedicationAdministration")
    assert given["effectiveDateTime"] == "2026-02-03T07:00:00+00:00"


def test_vital_signs_use_the_vital_signs_profile_codes_and_units() -> None:
    observations = of_type(mapped(rich()), "Observation")
    vitals = [o for o in observations if o["category"][0]["coding"][0]["code"] == "vital-signs"]
    loinc = {c["code"] for o in vitals for c in o["code"]["coding"] if "loinc" in c["system"]}
    assert loinc >= {"9279-1", "2708-6", "59408-5", "85354-9", "8867-4", "8310-5"}
    assert loinc >= {"29463-7", "8302-2"}
    (pressure,) = [o for o in vitals if codes(o["code"]) >= {("http://loinc.org", "85354-9")}]
    assert [c["valueQuantity"]["value"] for c in pressure["component"]] == [128, 74]
    assert pressure["component"][0]["valueQuantity"]["code"] == "mm[Hg]"
    (weight,) = [o for o in vitals if codes(o["code"]) >= {("http://loinc.org", "29463-7")}]
    assert weight["valueQuantity"] == {
        "value": 58.4,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    assert weight["effectiveDateTime"] == "2026-07-01T10:00:00+01:00"
    (acvpu,) = [o for o in observations if codes(o["code"]) == {(SNOMED, "1104441000000107")}]
    assert codes(acvpu["valueCodeableConcept"]) == {(SNOMED, "248234008")}


def test_spo2_scale_2_carries_its_target_range() -> None:
    harold = ndjson_records()[0][1]
    assert isinstance(harold, dict)
    resources = mapped(harold)
    (spo2,) = [
        o
        for o in of_type(resources, "Observation")
        if codes(o["code"]) >= {("http://loinc.org", "2708-6")}
    ]
    (target,) = spo2["referenceRange"]
    assert (target["low"]["value"], target["high"]["value"]) == (88, 92)
    assert "scale 2" in target["text"]
    (oxygen,) = [
        o for o in of_type(resources, "Observation") if o["code"].get("text", "").startswith("Air")
    ]
    assert codes(oxygen["valueCodeableConcept"]) == {(SNOMED, "371825009")}


def test_an_active_dnacpr_gives_a_consent_and_a_flag() -> None:
    resources = mapped(rich())
    consents = of_type(resources, "Consent")
    dnacpr = next(c for c in consents if codes(c["category"][0]) >= {(CONSENT_CATEGORY, "dnr")})
    assert codes(dnacpr["scope"]) == {("http://terminology.hl7.org/CodeSystem/consentscope", "adr")}
    assert dnacpr["status"] == "active"
    assert dnacpr["provision"]["type"] == "deny"
    assert codes(dnacpr["provision"]["code"][0]) == {(SNOMED, "89666000")}
    assert "front of the care file" in dnacpr["text"]["div"]
    (flag,) = [f for f in of_type(resources, "Flag") if codes(f["code"]) == {(SNOMED, "304253006")}]
    assert flag["status"] == "active" and flag["period"] == {"start": "2025-11-20"}
    details = [e["valueReference"]["reference"] for e in flag["extension"]]
    assert f"Consent/{dnacpr['id']}" in details  # and the ReSPECT form that agrees
    assert len(details) == 2


def test_a_withdrawn_dnacpr_leaves_the_flag_inactive_and_none_leaves_no_flag() -> None:
    obj = rich()
    for decision in obj["advanceDecisions"][:2]:
        decision["status"] = "withdrawn"
    resources = mapped(obj)
    (flag,) = [f for f in of_type(resources, "Flag") if codes(f["code"]) == {(SNOMED, "304253006")}]
    assert flag["status"] == "inactive" and "period" not in flag
    assert {c["status"] for c in of_type(resources, "Consent")[:2]} == {"inactive"}
    obj["advanceDecisions"] = obj["advanceDecisions"][2:]
    assert not [
        f for f in of_type(mapped(obj), "Flag") if codes(f["code"]) == {(SNOMED, "304253006")}
    ]


def test_a_lasting_power_of_attorney_names_the_attorney() -> None:
    resources = mapped(rich())
    claire = of_type(resources, "RelatedPerson")[0]
    lpa = of_type(resources, "Consent")[3]
    (actor,) = lpa["provision"]["actor"]
    assert actor["reference"] == {"reference": f"RelatedPerson/{claire['id']}"}
    assert lpa["performer"] == [{"reference": f"Patient/{resources[0]['id']}"}]
    relationship = [codes(r) for r in claire["relationship"]]
    assert {("http://terminology.hl7.org/CodeSystem/v2-0131", "N")} in relationship
    assert {("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "DAUC")} in relationship
    texts = [r.get("text") for r in claire["relationship"]]
    assert "Lasting power of attorney for health and welfare" in texts


def test_allergies_keep_their_status() -> None:
    allergies = of_type(mapped(rich()), "AllergyIntolerance")
    status = {a["code"]["text"]: a["clinicalStatus"]["coding"][0]["code"] for a in allergies}
    assert status["Strawberries"] == "resolved" and status["Penicillin"] == "active"
    assert {a["verificationStatus"]["coding"][0]["code"] for a in allergies} == {"confirmed"}
    harold = ndjson_records()[0][1]
    assert isinstance(harold, dict)
    (none_known,) = of_type(mapped(harold), "AllergyIntolerance")
    assert codes(none_known["code"]) == {(SNOMED, "716186003")}


def test_alerts_are_flags_active_until_their_end() -> None:
    flags = {
        f["code"]["text"].split(":")[0]: f
        for f in of_type(mapped(rich()), "Flag")
        if "text" in f["code"] and ":" in f["code"]["text"]
    }
    assert flags["Risk of falls"]["status"] == "active"
    assert codes(flags["Risk of falls"]["code"]) == {(SNOMED, "129839007")}
    dols = flags["Deprivation of Liberty Safeguards authorisation"]
    assert dols["status"] == "active" and dols["period"]["end"] == "2026-12-31"
    assert flags["Infection control precautions"]["status"] == "inactive"
    assert codes(flags["Infection control precautions"]["category"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/flag-category", "contact")
    }


def test_medicines_statements_and_the_last_dose_given() -> None:
    resources = mapped(rich())
    statements = of_type(resources, "MedicationStatement")
    given = {a["id"]: a for a in of_type(resources, "MedicationAdministration")}
    assert len(statements) == 5 and len(given) == 4
    paracetamol = next(s for s in statements if s["medicationCodeableConcept"].get("coding"))
    assert codes(paracetamol["medicationCodeableConcept"]) == {
        ("https://dmd.nhs.uk", "42109611000001109")
    }
    assert paracetamol["dosage"][0]["asNeededBoolean"] is True
    (derived,) = paracetamol["derivedFrom"]
    administration = given[derived["reference"].removeprefix("MedicationAdministration/")]
    assert administration["effectiveDateTime"] == "2026-07-14T14:30:00+01:00"
    assert administration["status"] == "completed"
    salbutamol = next(
        s for s in statements if "Salbutamol" in s["medicationCodeableConcept"]["text"]
    )
    assert "derivedFrom" not in salbutamol


def test_belongings_list_aids_as_devices_and_the_rest_by_name() -> None:
    resources = mapped(rich())
    devices = of_type(resources, "Device")
    assert [d["type"]["text"] for d in devices] == [
        "Hearing aid",
        "Glasses",
        "Dentures",
        "Walking frame",
    ]
    (listing,) = of_type(resources, "List")
    assert (listing["status"], listing["mode"], listing["code"]) == (
        "current",
        "snapshot",
        {"text": "Belongings"},
    )
    items = [entry["item"] for entry in listing["entry"]]
    assert [i["reference"] for i in items[:4]] == [f"Device/{d['id']}" for d in devices]
    assert items[4] == {"display": "Clothing: Two nightdresses, dressing gown and slippers"}
    flags = [entry["flag"]["text"] for entry in listing["entry"]]
    assert flags[3] == "Kept at the home" and flags[0] == "Sent with the resident"


def test_about_me_and_the_current_concern() -> None:
    resources = mapped(rich())
    (about,) = [o for o in of_type(resources, "Observation") if o["code"] == {"text": "About me"}]
    assert [c["code"]["text"] for c in about["component"]] == [
        "What matters to me",
        "How I communicate and how to communicate with me",
        "Things I like",
        "Things I do not like",
    ]
    assert "speak on her left side" in about["component"][1]["valueString"]
    (worry,) = of_type(resources, "Condition")
    assert worry["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert worry["clinicalStatus"]["coding"][0]["code"] == "active"
    assert worry["onsetDateTime"] == "2026-07-13T18:00:00+01:00"


def test_the_minimal_record_is_a_patient_and_a_stay() -> None:
    patient, episode = mapped(record("albert-nkemelu"))
    assert patient["identifier"] == [
        {"system": "urn:london-care-gateway:local-id:VM4X2", "value": "RES-0977"}
    ]
    assert episode["status"] == "active" and "extension" not in episode
