"""Council CLD returns: headers and values as real returns spell them, mapped
as Interweave's social care profiles do, refused rather than guessed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from mappings.cld.events import map_row, row_key
from mappings.cld.reader import UnreadableReturn, read_rows
from mappings.ukcore import Unmappable
from tests.support.ids import unkeyed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cld"
COUNCIL = "713"


def _rows(text: str) -> list[Any]:
    return list(read_rows(io.BytesIO(text.encode())))


def _mapped(path: Path) -> list[list[dict[str, Any]]]:
    with path.open("rb") as stream:
        return [map_row(row.values, COUNCIL).resources for row in read_rows(stream)]


def _by_type(resources: list[dict[str, Any]], res_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == res_type]


def test_the_return_maps_to_the_golden_file() -> None:
    """The golden file holds each id's basis: tests/unit/test_keyed_ids.py checks the keyed ids."""
    with unkeyed():
        mapped = _mapped(FIXTURES / "return.csv")
    golden = FIXTURES / "return.expected.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(mapped, indent=2, sort_keys=True) + "\n")
    assert mapped == json.loads(golden.read_text())


def test_every_resource_is_valid_r4_and_ids_are_stable() -> None:
    first, second = _mapped(FIXTURES / "return.csv"), _mapped(FIXTURES / "return.csv")
    assert first == second
    for resources in first:
        for resource in resources:
            assert validate_resource(resource, resource["resourceType"]) == [], resource


def test_header_spellings_and_value_drift_fold_onto_the_canonical_items() -> None:
    (row, *_) = list(read_rows((FIXTURES / "drift.csv").open("rb")))
    assert row.values["LA_Person_Unique_Identifier"] == "LA300"
    assert row.values["Primary_Support_Reason"] == "PHYSICAL SUPPORT - ACCESS AND MOBILITY ONLY"
    resources = map_row(row.values, COUNCIL).resources
    (patient,) = _by_type(resources, "Patient")
    assert patient["birthDate"] == "1945-05-02"  # 02/05/1945 is day first
    assert patient["gender"] == "female"
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "F84003"
    assert patient["address"] == [{"postalCode": "ZZ9 3CC"}]
    (condition,) = _by_type(resources, "Condition")
    assert condition["code"]["coding"][0]["code"] == "PS-AMO"
    (episode,) = _by_type(resources, "EpisodeOfCare")
    assert episode["type"][0]["coding"][0]["code"] == "LTS-RS"
    assert {"Accommodation_Status", "Has_Unpaid_Carer"} == {
        o["code"]["coding"][0]["code"] for o in _by_type(resources, "Observation")
    }
    unknown = next(o for o in _by_type(resources, "Observation") if "dataAbsentReason" in o)
    assert unknown["code"]["coding"][0]["code"] == "Has_Unpaid_Carer"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("NHS_Number,Event_Type,Event_Start_Date,Favourite_Colour", "Favourite_Colour"),
        ("NHS_Number,NHS No,Event_Type,Event_Start_Date", "twice"),
        ("NHS_Number,Event_Type", "Event_Start_Date"),
        ("Gender,Event_Type,Event_Start_Date", "neither NHS_Number"),
    ],
)
def test_a_header_that_cannot_be_read_refuses_the_return(header: str, reason: str) -> None:
    with pytest.raises(UnreadableReturn, match=reason):
        _rows(header + "\n9990000018,Service,2026-01-01,x\n")


def test_a_carriage_return_inside_a_field_refuses_that_row_and_the_rest_read() -> None:
    """Fuzzing found it: a lone CR inside an unquoted field raised the csv
    module's ``Error`` out of the reader, where it is that row's rejection."""
    rows = _rows(
        "NHS_Number,Event_Type,Event_Start_Date\n"
        "9990000018,Service,2026-01\r-01\n"
        "9990000018,Service,2026-01-02\n"
    )
    assert [(row.line, row.problem) for row in rows] == [
        (
            2,
            "not CSV: new-line character seen in unquoted field - do you need to open the file "
            "in universal-newline mode?",
        ),
        (3, None),
    ]
    assert rows[1].values["Event_Start_Date"] == "2026-01-02"


def test_a_header_that_is_not_csv_refuses_the_return() -> None:
    with pytest.raises(UnreadableReturn, match="the header is not CSV"):
        _rows("NHS_Number,Event\r_Type,Event_Start_Date\n9990000018,Service,2026-01-01\n")


@pytest.mark.parametrize(
    ("item", "value", "reason"),
    [
        ("Primary_Support_Reason", "Physical support", "Primary_Support_Reason"),
        ("Event_Type", "Visit", "Event_Type"),
        ("Event_Start_Date", "03/13/2026", "not a date"),
        ("Event_Start_Date", "2026-02-30", "not a date"),
        ("NHS_Number", "9990000019", "Modulus 11"),
        ("GP_Practice_Code", "F84 003 GP!", "ODS"),
        ("Service_Type", "Long term: something", "Service_Type"),
    ],
)
def test_what_does_not_fold_onto_a_defined_value_is_refused(
    item: str, value: str, reason: str
) -> None:
    values = {"NHS_Number": "9990000018", "Event_Type": "Service", "Event_Start_Date": "2026-01-01"}
    values[item] = value
    with pytest.raises(Unmappable, match=reason):
        map_row(values, COUNCIL)


def test_an_open_service_is_an_active_episode_and_an_ended_one_finished() -> None:
    values = {
        "NHS_Number": "9990000018",
        "Event_Type": "Service",
        "Event_Reference": "S1",
        "Event_Start_Date": "2026-01-01",
        "Provider_CQC_Location_ID": "1-123",
        "Provider_CQC_Location_Name": "Riverside Home Care",
    }
    resources = map_row(values, COUNCIL).resources
    (episode,) = _by_type(resources, "EpisodeOfCare")
    (team,) = _by_type(resources, "CareTeam")
    assert episode["status"] == "active" and team["status"] == "active"
    assert episode["managingOrganization"]["identifier"]["value"] == COUNCIL
    assert episode["team"] == [{"reference": f"CareTeam/{team['id']}"}]
    provider = team["participant"][0]["member"]
    assert provider["display"] == "Riverside Home Care"
    ended = map_row({**values, "Event_End_Date": "2026-03-01"}, COUNCIL).resources
    assert _by_type(ended, "EpisodeOfCare")[0]["status"] == "finished"
    assert _by_type(ended, "EpisodeOfCare")[0]["id"] == episode["id"]  # the same service


def test_costs_and_delivery_mechanism_stay_with_the_council() -> None:
    (_, _, service, *_) = _mapped(FIXTURES / "return.csv")
    text = json.dumps(service)
    for council_only in ("CASSR Managed Personal Budget", "21.50", "Hourly"):
        assert council_only not in text


def test_requests_and_assessments_become_service_requests_and_tasks() -> None:
    request, assessment, _, carer, review = _mapped(FIXTURES / "return.csv")
    (asked,) = _by_type(request, "ServiceRequest")
    assert asked["status"] == "completed"
    assert "Discharge from Hospital" in asked["category"][1]["text"]
    assert asked["note"] == [{"text": "Outcome: Progress to Assessment"}]
    (task,) = _by_type(assessment, "Task")
    assert task["code"]["text"] == "Long Term Support Assessment"
    assert task["owner"]["identifier"]["value"] == COUNCIL
    (reviewed,) = _by_type(review, "Task")
    assert reviewed["code"]["coding"][0]["code"] == "Review"
    assert reviewed["reasonCode"] == {"text": "Planned"}
    # The carer (no NHS number) is linked to the person they care for by
    # the council's id for that person.
    (link,) = _by_type(carer, "RelatedPerson")
    assert link["patient"]["reference"].endswith("|LA100")
    assert link["relationship"][0]["coding"][0]["code"] == "CAREGIVER"


def test_a_changed_row_is_a_new_version_of_the_same_record() -> None:
    values = {"NHS_Number": "9990000018", "Event_Type": "Service", "Event_Start_Date": "2026-01-01"}
    assert row_key(values) == row_key(dict(values))
    assert row_key(values) != row_key({**values, "Event_End_Date": "2026-02-01"})


def test_rows_keep_their_line_and_short_rows_are_reported() -> None:
    rows = _rows(
        "NHS_Number,Event_Type,Event_Start_Date,Event_Description\n"
        '9990000018,Service,2026-01-01,"two\nlines"\n'
        "\n"
        "9990000018,Service\n"
    )
    assert [(r.line, r.problem) for r in rows] == [
        (2, None),
        (5, "2 values where the header has 4"),
    ]
    assert rows[0].values["Event_Description"] == "two\nlines"


def test_a_return_saved_by_a_spreadsheet_is_read() -> None:
    body = "\ufeffNHS_Number,Event_Type,Event_Start_Date,Event_Description\r\n".encode()
    body += "9990000018,Service,2026-01-01,Caf\xe9 club\r\n".encode("cp1252")
    (row,) = list(read_rows(io.BytesIO(body)))
    assert row.values["NHS_Number"] == "9990000018"
    assert row.values["Event_Description"] == "Café club"


@pytest.mark.parametrize(
    ("sent", "code", "words"),
    [
        ("White: Irish", "B", "White - Irish"),
        ("Other ethnic group: Arab", "S", "Other Ethnic Groups - Any other ethnic group"),
        ("Undeclared / Not known", "99", "Not known"),
        ("z", "Z", "Not stated"),
    ],
)
def test_the_ethnicity_is_the_nhs_code_with_its_words(sent: str, code: str, words: str) -> None:
    values = {"NHS_Number": "9990000018", "Event_Type": "Review", "Event_Start_Date": "2026-01-01"}
    (patient, *_) = map_row({**values, "Ethnicity": sent}, COUNCIL).resources
    assert patient["extension"] == [
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
                        "code": code,
                        "display": words,
                    }
                ],
                "text": words,
            },
        }
    ]
