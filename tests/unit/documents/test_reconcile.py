"""One row per clinical fact, however many sources state it
(``gateway.documents.reconcile``)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.documents.narrative import Source
from gateway.documents.reconcile import Origins, Reconciled, kind_key, reconcile

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LAST_ISSUE = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationStatementLastIssueDate"
)
NAMES = {
    "F99C02": ("Primrose Row Surgery", "GP practice"),
    "V9C02": ("Canal Side Nursing Home", "Care home"),
    "R9D": ("North Thames Hospitals NHS Trust", "Hospital trust"),
    "E09000007": ("Camden Council adult social care", "Council"),
}
Resource = dict[str, Any]


def _ods(resource: Resource) -> str:
    return str(resource["meta"]["source"]).removeprefix("urn:ods:")


ORIGINS = Origins(
    shown=lambda r: f"{NAMES[_ods(r)][0]} ({_ods(r)})",
    kind=lambda r: NAMES[_ods(r)][1],
)


def _by(ods: str, resource: Resource) -> Resource:
    return {**resource, "meta": {"source": f"urn:ods:{ods}"}}


def _rows(*resources: Resource, latest_only: bool = False) -> list[Reconciled]:
    by_reference = {}
    for n, resource in enumerate(resources):
        resource.setdefault("id", f"r{n}")
        by_reference[f"{resource['resourceType']}/{resource['id']}"] = resource
    return reconcile(list(by_reference), by_reference, ORIGINS, latest_only=latest_only)


# -- medicines -------------------------------------------------------------------------------

APIXABAN = {"coding": [{"system": SNOMED, "code": "400738009", "display": "Apixaban 5mg tablets"}]}


def _apixaban_from_everyone(home_dose: str = "One tablet twice a day") -> list[Resource]:
    medication = _by("F99C02", {"resourceType": "Medication", "id": "apx", "code": APIXABAN})
    request = _by(
        "F99C02",
        {
            "resourceType": "MedicationRequest",
            "id": "gp-request",
            "status": "active",
            "medicationReference": {"reference": "Medication/apx"},
            "dosageInstruction": [{"text": "One tablet twice a day"}],
            "courseOfTherapyType": {"coding": [{"code": "continuous"}]},
            "authoredOn": "2023-11-09T09:00:00Z",
        },
    )
    statement = _by(
        "F99C02",
        {
            "resourceType": "MedicationStatement",
            "id": "gp-statement",
            "status": "active",
            "medicationReference": {"reference": "Medication/apx"},
            "dosage": [{"text": "One tablet twice a day"}],
            "effectivePeriod": {"start": "2023-11-09"},
            "dateAsserted": "2023-11-09T09:00:00Z",
            "extension": [{"url": LAST_ISSUE, "valueDateTime": "2026-11-14"}],
        },
    )
    given = _by(
        "V9C02",
        {
            "resourceType": "MedicationAdministration",
            "id": "home-dose",
            "status": "completed",
            "medicationCodeableConcept": {"text": "Apixaban 5mg Tablets."},
            "effectiveDateTime": "2026-12-06T18:00:00+00:00",
        },
    )
    home = _by(
        "V9C02",
        {
            "resourceType": "MedicationStatement",
            "id": "home-statement",
            "status": "active",
            "medicationCodeableConcept": {"text": "apixaban 5mg  tablets"},
            "dosage": [{"text": home_dose}],
            "derivedFrom": [{"reference": "MedicationAdministration/home-dose"}],
            "note": [{"text": "Sent with the resident in the red bag"}],
        },
    )
    return [given, request, statement, home, medication]


def test_one_medicine_from_four_records_is_one_row() -> None:
    *records, medication = _apixaban_from_everyone()
    by_reference = {f"{r['resourceType']}/{r['id']}": r for r in [*records, medication]}
    rows = reconcile([f"{r['resourceType']}/{r['id']}" for r in records], by_reference, ORIGINS)
    assert len(rows) == 1
    row = rows[0]
    # The prescriber speaks first: its request, then its statement; then the home.
    assert row.members == (
        "MedicationRequest/gp-request",
        "MedicationStatement/gp-statement",
        "MedicationStatement/home-statement",
        "MedicationAdministration/home-dose",
    )
    assert row.row.what == "Apixaban 5mg tablets"
    assert row.row.detail == (
        "One tablet twice a day; Repeat, last issued 14 Nov 2026; "
        "Last dose given 6 Dec 2026 18:00; Sent with the resident in the red bag"
    )
    assert (row.row.when, row.row.status) == ("From 9 Nov 2023", "Active")
    assert row.sources == (
        Source("Primrose Row Surgery (F99C02)", "9 Nov 2023"),
        Source("Canal Side Nursing Home (V9C02)", "6 Dec 2026"),
    )
    assert not row.conflicting


def test_two_doses_of_one_medicine_are_both_shown_and_flagged() -> None:
    *records, medication = _apixaban_from_everyone(home_dose="One tablet once a day")
    by_reference = {f"{r['resourceType']}/{r['id']}": r for r in [*records, medication]}
    [row] = reconcile(list(by_reference)[:-1], by_reference, ORIGINS)
    assert row.conflicting
    assert row.row.detail.startswith(
        "Doses differ: One tablet twice a day (Primrose Row Surgery (F99C02)); "
        "One tablet once a day (Canal Side Nursing Home (V9C02))"
    )


def test_a_medicine_stopped_by_one_source_and_taken_by_another_says_so() -> None:
    *records, medication = _apixaban_from_everyone()
    records[3]["status"] = "stopped"
    by_reference = {f"{r['resourceType']}/{r['id']}": r for r in [*records, medication]}
    [row] = reconcile(list(by_reference)[:-1], by_reference, ORIGINS)
    assert row.conflicting
    assert row.row.status == (
        "Active (Primrose Row Surgery (F99C02)); Stopped (Canal Side Nursing Home (V9C02))"
    )


def test_different_medicines_stay_apart() -> None:
    rows = _rows(
        _by("F99C02", {"resourceType": "MedicationStatement", "status": "active",
                       "medicationCodeableConcept": APIXABAN}),
        _by("V9C02", {"resourceType": "MedicationStatement", "status": "active",
                      "medicationCodeableConcept": {"text": "Paracetamol 500mg tablets"}}),
    )  # fmt: skip
    assert [r.row.what for r in rows] == ["Apixaban 5mg tablets", "Paracetamol 500mg tablets"]


# -- observations ------------------------------------------------------------------------------


def _reading(
    ods: str, codes: list[tuple[str, str]], value: float, when: str, unit: str
) -> Resource:
    return _by(
        ods,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": s, "code": c} for s, c in codes]},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": "/min"},
        },
    )


def test_one_reading_recorded_by_the_practice_and_the_home_is_one_row() -> None:
    rows = _rows(
        # "Heart rate" at the home and "Pulse rate" at the practice: one reading,
        # at one moment however its zone is written, in two spellings of a unit.
        _reading("V9C02", [(LOINC, "8867-4")], 66, "2026-07-31T09:00:00+01:00", "beats/minute"),
        _reading("F99C02", [(SNOMED, "78564009")], 66.0, "2026-07-31T08:00:00Z", "beats/min"),
    )
    assert len(rows) == 1
    assert [source.organisation for source in rows[0].sources] == [
        "Primrose Row Surgery (F99C02)",
        "Canal Side Nursing Home (V9C02)",
    ]
    assert not rows[0].conflicting


def test_two_values_for_one_moment_are_one_row_that_says_they_differ() -> None:
    [row] = _rows(
        _reading("V9C02", [(LOINC, "8867-4")], 66, "2026-07-31T09:00:00+01:00", "beats/minute"),
        _reading("F99C02", [(LOINC, "8867-4")], 72, "2026-07-31T09:00:00+01:00", "beats/min"),
    )
    assert row.conflicting
    assert row.row.detail == (
        "Sources differ: 72 beats/min (Primrose Row Surgery (F99C02)); "
        "66 beats/minute (Canal Side Nursing Home (V9C02))"
    )


def test_readings_at_different_moments_stay_apart_and_a_baseline_keeps_the_newest() -> None:
    old = _reading("F99C02", [(LOINC, "8867-4")], 80, "2025-01-01T09:00:00Z", "/min")
    new = _reading("V9C02", [(SNOMED, "364075005")], 66, "2026-07-31T09:00:00Z", "/min")
    twin = _reading("F99C02", [(SNOMED, "78564009")], 66, "2026-07-31T09:00:00Z", "/min")
    assert len(_rows(dict(old), dict(new), dict(twin))) == 2
    [latest] = _rows(old, new, twin, latest_only=True)
    assert set(latest.members) == {f"Observation/{new['id']}", f"Observation/{twin['id']}"}


# -- problems, allergies, contacts, the rest -------------------------------------------------------


def _condition(ods: str, status: str, onset: str | None = None, **more: Any) -> Resource:
    condition: Resource = {
        "resourceType": "Condition",
        "code": {
            "coding": [{"system": SNOMED, "code": "49436004", "display": "Atrial fibrillation"}]
        },
        "clinicalStatus": {"coding": [{"code": status}]},
        **more,
    }
    if onset:
        condition["onsetDateTime"] = onset
    return _by(ods, condition)


def test_a_current_problem_is_one_row_whatever_each_source_gives_as_its_onset() -> None:
    [row] = _rows(
        _condition("R9D", "active", "2026-10-01"), _condition("F99C02", "active", "2022-12-02")
    )
    assert row.row.when == "Since 2 Dec 2022"  # the practice's
    assert not row.conflicting


def test_past_episodes_years_apart_stay_two_problems() -> None:
    rows = _rows(
        _condition("F99C02", "resolved", "2019-01-10"),
        _condition("F99C02", "resolved", "2024-03-02"),
    )
    assert len(rows) == 2


def test_an_allergy_two_sources_disagree_on_is_flagged() -> None:
    penicillin = {"coding": [{"system": SNOMED, "code": "91936005", "display": "Penicillin"}]}
    [row] = _rows(
        _by("F99C02", {"resourceType": "AllergyIntolerance", "code": penicillin,
                       "criticality": "high", "clinicalStatus": {"coding": [{"code": "active"}]}}),
        _by("V9C02", {"resourceType": "AllergyIntolerance", "code": penicillin,
                      "criticality": "low", "clinicalStatus": {"coding": [{"code": "active"}]}}),
    )  # fmt: skip
    assert row.conflicting
    assert row.row.status == "Check: sources differ"
    assert "criticality high (Primrose Row Surgery (F99C02))" in row.row.detail
    assert "criticality low (Canal Side Nursing Home (V9C02))" in row.row.detail


def test_a_contact_both_the_hospital_and_the_home_list_is_one_row_in_the_homes_words() -> None:
    hospital = _by(
        "R9D",
        {
            "resourceType": "RelatedPerson",
            "name": [{"family": "Thompson", "given": ["Margaret"]}],
            "relationship": [{"text": "Niece"}],
        },
    )
    home = _by("V9C02", {"resourceType": "RelatedPerson",
                         "name": [{"use": "usual", "family": "Thompson", "given": ["Margaret"]}],
                         "relationship": [{"text": "Niece"}, {"text": "Next-of-Kin"}]})  # fmt: skip
    [row] = _rows(hospital, home)
    assert row.members[0] == f"RelatedPerson/{home['id']}"
    assert "Next-of-Kin" in row.row.detail


def test_other_entries_are_one_row_only_when_every_column_reads_the_same() -> None:
    def flag(ods: str, text: str) -> Resource:
        return _by(ods, {"resourceType": "Flag", "status": "active", "code": {"text": text}})

    rows = _rows(flag("F99C02", "Risk of falls"), flag("V9C02", "Risk of falls"),
                 flag("V9C02", "Lives alone"))  # fmt: skip
    assert [len(row.members) for row in rows] == [2, 1]


@pytest.mark.parametrize(
    ("words", "key"),
    [
        ("GP practice", "gp"),
        ("Hospital trust", "hospital"),
        ("Care home", "care-home"),
        ("Council", "council"),
        ("Privacy office", ""),
        ("", ""),
    ],
)
def test_the_directorys_words_for_a_kind(words: str, key: str) -> None:
    assert kind_key(words) == key


def test_a_dnacpr_form_and_its_alert_are_one_decision_shown_by_the_form() -> None:
    form = _by(
        "V9C02",
        {
            "resourceType": "Consent",
            "status": "active",
            "dateTime": "2026-10-22",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes",
                            "code": "dnr",
                        }
                    ]
                }
            ],
            "scope": {"coding": [{"code": "adr"}]},
        },
    )
    alert = _by(
        "V9C02",
        {
            "resourceType": "Flag",
            "status": "active",
            "period": {"start": "2026-10-22"},
            "code": {"coding": [{"system": SNOMED, "code": "304253006"}]},
        },
    )
    older = _by("F99C02", {**alert, "period": {"start": "2021-03-01"}})
    rows = _rows(alert, form, older)
    assert [row.members for row in rows] == [
        (f"Consent/{form['id']}", f"Flag/{alert['id']}"),
        (f"Flag/{older['id']}",),
    ]


def test_what_one_source_leaves_out_is_no_disagreement() -> None:
    penicillin = {"coding": [{"system": SNOMED, "code": "91936005", "display": "Penicillin"}]}
    active = {"coding": [{"code": "active"}]}
    [row] = _rows(
        _by("F99C02", {"resourceType": "AllergyIntolerance", "code": penicillin,
                       "criticality": "high", "clinicalStatus": active,
                       "verificationStatus": {"coding": [{"code": "confirmed"}]}}),
        _by("V9C02", {"resourceType": "AllergyIntolerance", "code": penicillin,
                      "clinicalStatus": active}),
    )  # fmt: skip
    assert not row.conflicting
    assert row.row.status == "Active"


def test_no_known_allergy_beside_an_allergy_says_who_records_one() -> None:
    none_known = {"coding": [{"system": SNOMED, "code": "716186003"}], "text": "No known allergy"}
    penicillin = {"coding": [{"system": SNOMED, "code": "91936005"}], "text": "Penicillin"}
    rows = _rows(
        _by("V9C02", {"resourceType": "AllergyIntolerance", "code": none_known}),
        _by("F99C02", {"resourceType": "AllergyIntolerance", "code": penicillin}),
    )
    assert [row.conflicting for row in rows] == [True, False]
    assert rows[0].row.detail == ("Sources differ: Primrose Row Surgery (F99C02) record allergies")
    # Only "no known allergy": nothing to check.
    [alone] = _rows(_by("V9C02", {"resourceType": "AllergyIntolerance", "code": none_known}))
    assert not alone.conflicting
