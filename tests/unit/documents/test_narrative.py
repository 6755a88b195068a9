"""Section narratives: one row per resource in words a reader takes in at a
glance, written as FHIR narrative XHTML that is well formed, uses only the
allowed elements and shows a record's text, markup and all, as text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.directory import Organisation
from gateway.documents.narrative import (
    Row,
    Source,
    empty_div,
    format_date,
    organisation,
    organisations_known,
    section_div,
    subject_div,
    summarise,
)
from gateway.documents.reconcile import Origins, reconcile
from gateway.identifiers import ODS_SYSTEM

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
XHTML = "{http://www.w3.org/1999/xhtml}"
# The FHIR narrative subset these narratives keep to (narrative.html#xhtml).
ALLOWED_ELEMENTS = {
    "div", "p", "table", "thead", "tbody", "tr", "th", "td", "span", "b", "i", "ul", "li", "br",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"class", "id"}

Resource = dict[str, Any]


def load(path: str) -> list[Resource]:
    """A golden file's resources, flattened (some hold one list per record)."""
    found = json.loads((FIXTURES / path).read_text())
    found = found if isinstance(found, list) else [found]
    return [r for item in found for r in (item if isinstance(item, list) else [item])]


def resolver(resources: list[Resource]) -> Callable[[str], Resource | None]:
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    return by_ref.get


def nothing(reference: str) -> Resource | None:
    return None


def one(resources: list[Resource], res_type: str, **where: Any) -> Resource:
    """The only resource of a type whose text (anywhere in it) says each value."""
    found = [
        r
        for r in resources
        if r["resourceType"] == res_type and all(v in json.dumps(r) for v in where.values())
    ]
    assert len(found) == 1, (res_type, where, len(found))
    return found[0]


CARE_HOME = load("carehome/winifred-maddox.expected.json")
GP = load("gpconnect/structured-rich.expected.json")
COUNCIL = load("cld/return.expected.json")
HOSPITAL = load("hl7v2/admit-and-discharge.expected.json")


def check_narrative(div: str) -> ET.Element:
    """Parses as XML, is one XHTML div, and holds nothing outside the subset."""
    root = ET.fromstring(div)
    assert root.tag == f"{XHTML}div"
    for element in root.iter():
        assert element.tag.startswith(XHTML), element.tag
        assert element.tag[len(XHTML) :] in ALLOWED_ELEMENTS, element.tag
        assert set(element.attrib) <= ALLOWED_ATTRIBUTES, element.attrib
    assert "".join(root.itertext()).strip(), "a narrative must hold some text"
    return root


def cells(div: str) -> list[list[str]]:
    root = check_narrative(div)
    return [
        ["".join(td.itertext()) for td in tr.iter(f"{XHTML}td")]
        for tr in root.iter(f"{XHTML}tr")
        if list(tr.iter(f"{XHTML}td"))
    ]


# -- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("1934-11-02", "2 Nov 1934"),
        ("1998-06", "Jun 1998"),
        ("1998", "1998"),
        ("2026-03-14T20:30:00+00:00", "14 Mar 2026 20:30"),
        # The local time written, never converted to another zone.
        ("2026-07-14T20:45:00+01:00", "14 Jul 2026 20:45"),
        ("2016-03-14T10:42:00Z", "14 Mar 2016 10:42"),
        ("2025-09-17T14:02:00.123+01:00", "17 Sep 2025 14:02"),
        ("2026-02-31", "2026-02-31"),
        ("yesterday", "yesterday"),
        (None, ""),
    ],
)
def test_dates_keep_the_precision_and_local_time_written(written: Any, shown: str) -> None:
    assert format_date(written) == shown


# -- one row per resource type -----------------------------------------------------------------


def test_an_allergy_shows_substance_reaction_severity_and_status() -> None:
    allergy = one(CARE_HOME, "AllergyIntolerance", text="Penicillin")
    assert summarise(allergy, nothing) == Row(
        "Penicillin",
        "Widespread rash and swelling of the face (severe)",
        "Recorded 18 Mar 2019",
        "Active",
    )


def test_a_resolved_allergy_says_so() -> None:
    allergy = one(CARE_HOME, "AllergyIntolerance", text="Strawberries")
    assert summarise(allergy, nothing).status == "Resolved"
    plaster = one(GP, "AllergyIntolerance", code="402306009")
    assert summarise(plaster, nothing).status == "Resolved, unconfirmed"


def test_an_allergy_from_a_coding_shows_criticality_and_onset() -> None:
    row = summarise(one(GP, "AllergyIntolerance", code="91936005"), nothing)
    assert row.what == "Allergy to penicillin"
    assert "Eruption of skin, Widespread itchy rash (moderate)" in row.detail
    assert "Criticality high" in row.detail
    assert row.when == "Since Jun 1998"
    assert row.status == "Active, unconfirmed"


def test_a_condition_shows_onset_and_provisional_status() -> None:
    row = summarise(one(CARE_HOME, "Condition"), nothing)
    assert row.what.startswith("More confused than usual")
    assert row.when == "Since 13 Jul 2026 18:00"
    assert row.status == "Active, provisional"


def test_a_past_condition_shows_when_it_began_and_ended() -> None:
    row = summarise(one(GP, "Condition", text="Raised blood pressure"), nothing)
    assert (row.what, row.when, row.status) == (
        "Raised blood pressure",
        "2 Nov 2015 to 14 Mar 2016",
        "Inactive",
    )


def test_a_condition_with_only_a_coding_and_severity() -> None:
    row = summarise(load("r4/Condition.json")[0], nothing)
    assert row.what == "Asthma"
    assert row.detail.startswith("Moderate")


def test_a_care_home_medicine_says_it_went_in_the_red_bag_and_when_last_given() -> None:
    statement = one(CARE_HOME, "MedicationStatement", text="Apixaban")
    row = summarise(statement, resolver(CARE_HOME))
    assert row.what == "Apixaban 2.5mg tablets"
    assert "One tablet twice a day (8am and 6pm)" in row.detail
    assert "Sent with the resident in the red bag" in row.detail
    assert "Last dose given 14 Jul 2026 18:05" in row.detail
    assert row.status == "Active"


def test_a_medicine_kept_at_the_home_says_so() -> None:
    statement = one(CARE_HOME, "MedicationStatement", text="Fentanyl")
    assert "Not sent with the resident: kept at the home" in summarise(statement, nothing).detail


def test_a_medicine_named_by_reference_is_resolved_in_the_document() -> None:
    statement = one(GP, "MedicationStatement", status="active")
    row = summarise(statement, resolver(GP))
    assert row.what == "Amlodipine 5mg tablets"
    assert row.detail == "One tablet once a day; Take in the morning"
    assert row.when == "From 21 Mar 2016; last issued 6 Oct 2025"
    # Without the Medication in the document the row still says something.
    assert summarise(statement, nothing).what == "Medication not named"


def test_a_prescription_shows_course_dosage_reason_and_date() -> None:
    request = one(GP, "MedicationRequest", text="Course completed")
    row = summarise(request, resolver(GP))
    assert row == Row(
        "Amoxicillin 500mg capsules",
        "Acute; One capsule three times a day for 7 days; Course completed; "
        "Status changed on 2024-12-09",
        "2 Dec 2024 16:45",
        "Completed",
    )


def test_a_statement_gives_each_reason_for_its_status() -> None:
    """A statement's statusReason is a list (a request's is one concept):
    each reason is shown, as one row for the medicine shows them too."""
    statement = {
        "resourceType": "MedicationStatement",
        "status": "stopped",
        "medicationCodeableConcept": {"text": "Amlodipine 5mg tablets"},
        "statusReason": [{"text": "Low blood pressure on standing"}, {"text": "Falls"}],
    }
    assert "Low blood pressure on standing; Falls" in summarise(statement, nothing).detail
    (fact,) = reconcile(
        ["MedicationStatement/a", "MedicationStatement/b"],
        {"MedicationStatement/a": statement, "MedicationStatement/b": dict(statement)},
        Origins(lambda resource: "Whittington Hospital (RKE)", lambda resource: "Hospital"),
    )
    assert "Low blood pressure on standing; Falls" in fact.row.detail


def test_an_administration_is_the_last_dose_given() -> None:
    given = one(CARE_HOME, "MedicationAdministration", text="Paracetamol")
    assert summarise(given, nothing) == Row(
        "Paracetamol 500mg tablets", "Last dose given", "14 Jul 2026 14:30", "Given"
    )
    with_dose = summarise(load("r4/MedicationAdministration.json")[0], nothing)
    assert with_dose.detail.startswith("Last dose given: One tablet by mouth")


def test_an_immunisation_given_and_one_not_done() -> None:
    flu = summarise(one(GP, "Immunization", status="completed"), nothing)
    assert flu.what.startswith("Influenza vaccine")
    assert "Dose 1 against Influenza" in flu.detail
    assert (flu.when, flu.status) == ("8 Oct 2024 09:30", "Given")
    refused = summarise(one(GP, "Immunization", status="not-done"), nothing)
    assert refused.status == "Not given"
    assert refused.detail == "Vaccine refused by patient"


def test_blood_pressure_is_one_value_with_its_unit() -> None:
    care_home = one(CARE_HOME, "Observation", text="Blood pressure")
    assert summarise(care_home, nothing).detail == "128/74 mmHg"
    gp = summarise(one(GP, "Observation", code="75367002"), nothing)
    # UCUM's mm[Hg] written for people, with the interpretation beside it.
    assert gp.detail.startswith("152/94 mmHg (High)")
    assert gp.when == "15 Sep 2025 10:35"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Oxygen saturation", "95%; NEWS2 SpO2 scale 1"),
        ("Body weight", "58.4 kg"),
        ("Air or oxygen (NEWS2)", "Breathing room air"),
        ("Usual mobility", "Walks short distances with a four-wheeled walker"),
    ],
)
def test_observation_values_of_each_kind(text: str, detail: str) -> None:
    observation = one(CARE_HOME, "Observation", text=f'"text": "{text}"')
    assert summarise(observation, nothing).detail.startswith(detail)


def test_an_observation_of_components_names_each() -> None:
    about = summarise(one(CARE_HOME, "Observation", text="About me"), nothing)
    assert about.detail.startswith("What matters to me: Her family")
    assert "Things I do not like: Being rushed" in about.detail
    assert about.when == "12 May 2026"


def test_a_yes_or_no_observation() -> None:
    carer = next(r for r in COUNCIL if "Has unpaid carer" in json.dumps(r))
    assert summarise(carer, nothing).detail == "Yes"


def test_a_panel_shows_its_members_from_the_document() -> None:
    panel = one(GP, "Observation", code="26604007")
    detail = summarise(panel, resolver(GP)).detail
    assert "Haemoglobin estimation: 128 g/L (Normal); range 115\u2013165 g/L" in detail
    assert "Total white cell count: 6.1 \u00d710\u2079/L" in detail


def test_a_report_shows_results_conclusion_and_laboratory() -> None:
    row = summarise(one(GP, "DiagnosticReport"), resolver(GP))
    assert row.what == "Full blood count"
    assert "Haemoglobin estimation: 128 g/L" in row.detail
    assert "Conclusion: Within normal limits" in row.detail
    assert "Northgate Pathology Laboratory" in row.detail
    assert row.when == "Issued 17 Sep 2025 14:02"


def test_a_procedure() -> None:
    row = summarise(load("r4/Procedure.json")[0], nothing)
    assert (row.what, row.when, row.status) == (
        "Appendicectomy",
        "22 Jun 2021 19:05\u201320:10",
        "Completed",
    )
    assert "Mr David OSEI" in row.detail


def test_a_care_plan_shows_description_goals_and_review() -> None:
    row = summarise(one(CARE_HOME, "CarePlan"), nothing)
    assert row.what == "Care plan"
    assert row.detail.startswith("Needs one carer and her walker for all transfers")
    assert "Goal: To walk to the garden with her frame every day" in row.detail
    assert "Care plan last reviewed (30 Jun 2026)" in row.detail
    assert row.status == "Active"


def test_a_dnacpr_decision_shows_its_decision_and_where_the_form_is() -> None:
    dnacpr = one(CARE_HOME, "Consent", code="dnr")
    row = summarise(dnacpr, nothing)
    assert row.what == "Do not attempt cardiopulmonary resuscitation (DNACPR) decision"
    assert row.detail.startswith("Not for cardiopulmonary resuscitation.")
    assert "Purple DNACPR form at the front of the care file" in row.detail
    assert row.when == "20 Nov 2025; verified 12 May 2026"
    assert row.status == "Active"


def test_a_respect_form_and_a_lasting_power_of_attorney() -> None:
    respect = summarise(one(CARE_HOME, "Consent", code="polst"), nothing)
    assert respect.what.startswith("ReSPECT")
    assert respect.detail.startswith("Prioritise comfort.")
    lpa = one(CARE_HOME, "Consent", text="health and welfare", role="HPOWATT")
    row = summarise(lpa, resolver(CARE_HOME))
    assert row.what == "Lasting power of attorney for health and welfare"
    assert "Healthcare power of attorney: Mrs Claire Maddox-Hughes" in row.detail


def test_a_consent_without_narrative_is_described_from_its_provision() -> None:
    dnacpr = dict(one(CARE_HOME, "Consent", code="dnr"))
    del dnacpr["text"]
    row = summarise(dnacpr, nothing)
    assert row.detail.startswith("Refuses: Cardiopulmonary resuscitation")
    assert "The signed original: Purple DNACPR form" in row.detail
    sharing = summarise(load("r4/Consent.json")[0], nothing)
    assert "valid 12 Mar 2024 to 12 Mar 2025" in sharing.when


def test_flags_show_their_text_and_period() -> None:
    dnacpr = summarise(one(CARE_HOME, "Flag", code="304253006"), resolver(CARE_HOME))
    assert dnacpr == Row(
        "Not for attempted cardiopulmonary resuscitation",
        "Advance Directive",
        "From 20 Nov 2025",
        "Active",
    )
    dols = summarise(one(CARE_HOME, "Flag", text="Deprivation of Liberty"), nothing)
    assert dols.when == "15 Jan 2026 to 31 Dec 2026"
    isolation = summarise(one(CARE_HOME, "Flag", text="Norovirus"), nothing)
    assert isolation.status == "Inactive"


def test_an_episode_of_care_names_the_home_and_room() -> None:
    assert summarise(one(CARE_HOME, "EpisodeOfCare"), nothing) == Row(
        "Nursing care",
        "Plane Tree House Nursing Home (VM4X2); Room 12 (Bluebell wing)",
        "From 4 Sep 2023",
        "Active",
    )


def test_a_referral_names_its_reason_from_the_document() -> None:
    referral = one(GP, "ServiceRequest", code="183519002")
    row = summarise(referral, resolver(GP))
    assert row.what == "Referral to cardiology service"
    assert "Riverside Hospital Cardiology" in row.detail
    assert "Essential hypertension" in row.detail
    assert row.when == "Requested 15 Sep 2025 10:44"
    assert row.status == "Active"


def test_a_council_request_and_assessment() -> None:
    request = next(r for r in COUNCIL if r["resourceType"] == "ServiceRequest")
    assert summarise(request, nothing).when == "1 Sep 2026 to 3 Sep 2026"
    assessment = next(r for r in COUNCIL if r["resourceType"] == "Task")
    row = summarise(assessment, nothing)
    assert row.what == "Long Term Support Assessment"
    assert (
        "Care Act eligibility assessment; Outcome: Long Term Support; "
        "713 (organisation not in the directory)" in row.detail
    )
    assert (row.when, row.status) == ("4 Sep 2026 to 20 Sep 2026", "Completed")


def test_encounters_from_a_practice_and_a_hospital() -> None:
    surgery = summarise(one(GP, "Encounter"), resolver(GP))
    assert surgery.what == "Surgery consultation"
    assert "Larkspur Medical Centre - Dalston branch" in surgery.detail
    assert (surgery.when, surgery.status) == ("15 Sep 2025 10:30\u201310:45", "Finished")
    admitted = summarise(HOSPITAL[1], nothing)
    # The admission method's words (UK Core's extension) say what the stay was.
    assert admitted.what.startswith("Emergency Admission: Emergency Care Department")
    assert admitted.detail.startswith("Inpatient encounter; W12 B 3")
    assert "Admitted from: Usual place of residence" in admitted.detail
    assert (admitted.when, admitted.status) == ("From 15 Mar 2026 09:30", "In progress")
    discharged = [r for r in HOSPITAL if r["resourceType"] == "Encounter"][-1]
    assert "Discharged to: Usual place of residence" in summarise(discharged, nothing).detail


def test_people_and_organisations() -> None:
    daughter = summarise(one(CARE_HOME, "RelatedPerson", text="Claire"), nothing)
    assert daughter.what == "Mrs Claire Maddox-Hughes"
    assert daughter.detail.startswith("Daughter, Next-of-Kin, Emergency Contact")
    assert daughter.detail.endswith("Phone 07700 900123")
    gp = summarise(one(GP, "PractitionerRole", code="R0260"), resolver(GP))
    assert gp == Row(
        "Dr Samuel Achterberg", "General Medical Practitioner; Larkspur Medical Centre", "", ""
    )
    assert summarise(one(GP, "Practitioner", code="G9990023"), nothing).what == (
        "Ms Priya Lindqvist"
    )
    practice = summarise(one(GP, "Organization", code="F84003"), nothing)
    assert practice == Row(
        "Larkspur Medical Centre",
        "ODS F84003; Phone 020 7946 0001; 1 Chalkhill Lane, London, E8 1ZZ",
        "",
        "",
    )
    branch = summarise(one(GP, "Location"), resolver(GP))
    assert branch.what == "Larkspur Medical Centre - Dalston branch"
    assert branch.detail.startswith("GP branch surgery; 22 Wren Parade")


def test_a_care_team_lists_its_members_and_roles() -> None:
    team = next(r for r in COUNCIL if r["resourceType"] == "CareTeam")
    row = summarise(team, nothing)
    assert row.what == "Home support: personal care"
    assert "Riverside Home Care (Care provider)" in row.detail
    # The council manages the team and is a member of it: named once.
    council = {
        "identifier": {"system": ODS_SYSTEM, "value": "E09000007"},
        "display": "Camden Council",
    }
    both = {
        **team,
        "participant": [
            *team["participant"],
            {"member": council, "role": [{"text": "Commissioning council"}]},
        ],
        "managingOrganization": [council],
    }
    assert summarise(both, nothing).detail.count("Camden Council") == 1


def test_devices_and_belongings() -> None:
    hearing_aid = summarise(one(CARE_HOME, "Device", text="Hearing aid"), nothing)
    assert (hearing_aid.what, hearing_aid.detail) == ("Hearing aid", "Left ear, beige, named")
    belongings = summarise(one(CARE_HOME, "List"), resolver(CARE_HOME))
    assert belongings.what == "Belongings"
    assert belongings.detail.startswith(
        "Sent with the resident: Hearing aid: Left ear, beige, named; Glasses:"
    )
    assert belongings.detail.endswith("Kept at the home: Walking frame: Four-wheeled walker, red")


def test_a_document_reference() -> None:
    row = summarise(one(GP, "DocumentReference"), resolver(GP))
    assert row.what == "Clinical letter"
    assert "Referral letter to cardiology; Cardiology referral letter" in row.detail
    assert (row.when, row.status) == ("15 Sep 2025 11:02", "Current")


def test_a_patient() -> None:
    assert summarise(CARE_HOME[0], nothing) == Row(
        "MADDOX, Winifred Joan (Mrs)",
        "NHS number 999 234 5675; Born 2 Nov 1934; Female; "
        "Plane Tree House, 14 Chalk Hill Road, Sutton, QQ1 4AB",
        "",
        "",
    )


def test_any_other_type_gets_its_type_and_first_text() -> None:
    order = {
        "resourceType": "NutritionOrder",
        "id": "n1",
        "status": "active",
        "patient": {"reference": "Patient/1"},
        "oralDiet": {"type": [{"text": "Soft and bite-sized diet"}]},
    }
    assert summarise(order, nothing) == Row(
        "NutritionOrder", "Soft and bite-sized diet", "", "Active"
    )
    assert summarise({"resourceType": "Basic"}, nothing).what == "Basic"


EVERY_TYPE = [
    "AllergyIntolerance", "CarePlan", "CareTeam", "Condition", "Consent", "Device",
    "DiagnosticReport", "DocumentReference", "Encounter", "EpisodeOfCare", "Flag", "Goal",
    "Immunization", "List", "Location", "Medication", "MedicationAdministration",
    "MedicationRequest", "MedicationStatement", "Observation", "Organization", "Patient",
    "Practitioner", "PractitionerRole", "Procedure", "RelatedPerson", "ServiceRequest", "Task",
    "Composition",
]  # fmt: skip
# Every element a summary reads, filled with the wrong shape of value.
MALFORMED = {
    "code": "x", "status": 7, "clinicalStatus": ["active"], "note": "n", "reaction": [1, "a"],
    "period": [], "name": {"given": "W"}, "telecom": "t", "address": [None],
    "dosage": ["d"], "dosageInstruction": {"text": 3}, "component": [{"code": 1}],
    "valueQuantity": {"value": "high"}, "entry": [{"item": "x"}], "provision": "p",
    "participant": [{"member": 5}], "text": {"div": 9}, "effectivePeriod": "2026",
    "result": ["x"], "hasMember": [{"reference": 5}], "derivedFrom": [{"reference": "X/1"}],
    "identifier": "i", "class": "c", "category": {"text": None}, "birthDate": 1934,
    "effectiveDateTime": 5, "extension": [{"url": 5}, "e"], "occurrenceDateTime": {},
    "performer": "x", "reasonReference": [1], "protocolApplied": [{"doseNumberPositiveInt": True}],
    "deviceName": [{"name": 3}], "content": [{"attachment": {"title": 1, "creation": []}}],
    "verification": [{"verificationDate": None}], "goal": [{"reference": "Goal/1"}],
    "activity": [{"detail": {"code": 5}}], "relationship": "r", "qualification": [{"code": 0}],
    "deceasedBoolean": "yes", "onsetAge": {"value": 3}, "interpretation": "H",
    "referenceRange": [{"low": {"value": "a"}}], "medicationReference": {"reference": 1},
}  # fmt: skip


@pytest.mark.parametrize("res_type", EVERY_TYPE)
def test_no_resource_breaks_a_summary(res_type: str) -> None:
    for resource in ({"resourceType": res_type}, {"resourceType": res_type, **MALFORMED}):
        row = summarise(resource, lambda ref: {"resourceType": "Medication", "code": "bad"})
        assert isinstance(row, Row) and row.what
        check_narrative(section_div([row]))


@pytest.mark.parametrize(
    "path",
    [
        "carehome/winifred-maddox.expected.json",
        "carehome/albert-nkemelu.expected.json",
        "gpconnect/structured-minimal.expected.json",
        "gpconnect/structured-rich.expected.json",
        "cld/return.expected.json",
        "hl7v2/admit-and-discharge.expected.json",
    ],
)
def test_every_mapped_resource_makes_a_valid_narrative_row(path: str) -> None:
    resources = load(path)
    rows = [summarise(r, resolver(resources)) for r in resources]
    assert all(row.what for row in rows)
    assert len(cells(section_div(rows))) == len(rows)


# -- the XHTML ---------------------------------------------------------------------------------


def test_a_section_is_a_table_of_what_detail_date_and_status() -> None:
    rows = [summarise(r, nothing) for r in CARE_HOME if r["resourceType"] == "AllergyIntolerance"]
    div = section_div(rows)
    root = check_narrative(div)
    assert [th.text for th in root.iter(f"{XHTML}th")] == ["What", "Detail", "Date", "Status"]
    assert cells(div)[0] == [
        "Penicillin",
        "Widespread rash and swelling of the face (severe)",
        "Recorded 18 Mar 2019",
        "Active",
    ]
    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


def test_a_section_says_where_each_row_came_from() -> None:
    rows = [Row("Penicillin", "Rash"), Row("Strawberries", "Itchy mouth", "", "Resolved")]
    sources = [
        [Source("Chalk Hill Medical Centre (F81001)", "3 Mar 2026")],
        [
            Source("Plane Tree House Nursing Home (V9P01)", "14 Jul 2026"),
            Source("Chalk Hill Medical Centre (F81001)"),
        ],
    ]
    div = section_div(rows, source_of=sources, ids=["allergies-1", "allergies-2"])
    root = check_narrative(div)
    assert [th.text for th in root.iter(f"{XHTML}th")][-1] == "From"
    assert [row[-1] for row in cells(div)] == [
        "Chalk Hill Medical Centre (F81001), 3 Mar 2026",
        "Plane Tree House Nursing Home (V9P01), 14 Jul 2026; Chalk Hill Medical Centre (F81001)",
    ]
    assert [tr.get("id") for tr in root.iter(f"{XHTML}tr")] == [None, "allergies-1", "allergies-2"]
    organisations = [span.text for span in root.iter(f"{XHTML}span")]
    assert organisations == [
        "Chalk Hill Medical Centre (F81001)",
        "Plane Tree House Nursing Home (V9P01)",
        "Chalk Hill Medical Centre (F81001)",
    ]
    for name, given in (("source_of", {"source_of": sources[:1]}), ("ids", {"ids": ["a"]})):
        with pytest.raises(ValueError, match=name):
            section_div(rows, **given)  # type: ignore[arg-type]


def test_a_row_whose_sources_differ_is_marked() -> None:
    rows = [Row("Apixaban 5mg tablets", "Doses differ"), Row("Paracetamol")]
    root = check_narrative(section_div(rows, conflicting=[True, False]))
    assert [tr.get("class") for tr in root.iter(f"{XHTML}tr")] == [None, "conflict", None]


def test_a_record_written_as_markup_is_shown_as_text() -> None:
    hostile = {
        "resourceType": "Condition",
        "code": {"text": "<script>alert(1)</script>"},
        "note": [{"text": 'Fish & chips "quoted" <b onclick="x()">bold</b>\nnext line\x01'}],
    }
    row = summarise(hostile, nothing)
    div = section_div([row], source_of=[[Source("<img src=x onerror=alert(1)>")]])
    root = check_narrative(div)
    assert "<script" not in div and "<img" not in div and 'onclick="' not in div
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in div
    assert cells(div)[0][0] == "<script>alert(1)</script>"
    assert cells(div)[0][1] == 'Fish & chips "quoted" <b onclick="x()">bold</b>next line'
    # A line break in a record stays one; a character XML cannot carry is dropped.
    assert len(list(root.iter(f"{XHTML}br"))) == 1
    assert "\x01" not in div


def test_an_empty_section_says_why() -> None:
    div = empty_div("No known allergies recorded")
    root = check_narrative(div)
    assert "".join(root.itertext()) == "No known allergies recorded"
    assert "".join(check_narrative(empty_div("  ")).itertext()) == "Not available"
    assert "".join(check_narrative(section_div([])).itertext()) == "None recorded"
    assert "&lt;b&gt;" in empty_div("<b>")


def test_the_subject_narrative_identifies_the_person() -> None:
    div = subject_div(CARE_HOME[0], "Red Bag: hospital transfer record")
    root = check_narrative(div)
    assert root.find(f"{XHTML}h1") is not None
    facts = {
        tr.find(f"{XHTML}th").text: tr.find(f"{XHTML}td").text  # type: ignore[union-attr]
        for tr in root.iter(f"{XHTML}tr")
    }
    assert facts == {
        "Name": "MADDOX, Winifred Joan (Mrs)",
        "Known as": "Winnie",
        "NHS number": "999 234 5675",
        "Date of birth": "2 Nov 1934",
        "Gender": "Female",
        "Address": "Plane Tree House, 14 Chalk Hill Road, Sutton, QQ1 4AB",
        "Registered GP": "Chalk Hill Medical Centre (F84003)",
    }
    assert "Red Bag: hospital transfer record" in div


def test_the_subject_narrative_of_a_person_with_little_recorded() -> None:
    div = subject_div({"resourceType": "Patient", "name": [{"text": "<Unknown>"}]}, "<Summary>")
    text = "".join(check_narrative(div).itertext())
    assert "<Unknown>" in text and "<Summary>" in text
    assert "NHS numberNot recorded" in text


def test_an_organisation_named_by_its_code_reads_as_the_directorys_name() -> None:
    """Within ``organisations_known``, a code reads as the directory's name
    with the code beside it, above the name a record gave; a code it does
    not know reads as the code, saying so."""
    known = {"F84003": Organisation("F84003", "Chalk Hill Surgery", "GP practice")}
    with organisations_known(known):
        div = subject_div(CARE_HOME[0], "Red Bag")
        assert organisation("f84003") == "Chalk Hill Surgery (F84003)"
        assert organisation("Q1X", "Somewhere") == "Somewhere (Q1X)"
        assert organisation("Q1X") == "Q1X (organisation not in the directory)"
    assert "Chalk Hill Surgery (F84003)" in div
    assert organisation("F84003") == "F84003 (organisation not in the directory)"
