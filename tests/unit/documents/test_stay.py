"""Which stay is the latest, what the hospital sent about it and which
medicines it started and stopped, from the records a requester may see."""

from __future__ import annotations

from typing import Any

from gateway.documents.reconcile import Origins
from gateway.documents.stay import Stay, changes, latest_stay, sent, stay_row

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
HOSPITAL = "urn:ods:RKE"
ORIGINS = Origins(lambda resource: "someone", lambda resource: "")


def _encounter(
    res_id: str, code: str, status: str, start: str, end: str = "", **more: Any
) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Encounter",
        "id": res_id,
        "meta": {"source": HOSPITAL},
        "status": status,
        "class": {"system": ACT, "code": code},
        "serviceProvider": {"identifier": {"system": ODS, "value": "RKE"}},
        "period": period,
        **more,
    }


def _by_reference(*resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def _name(reference: Any) -> str:
    return "Whittington Hospital (RKE)" if reference else ""


def _stay(*resources: dict[str, Any]) -> Stay:
    found = latest_stay(_by_reference(*resources), _name)
    assert found is not None
    return found


FINISHED = _encounter(
    "in", "IMP", "finished", "2026-11-24T14:05:00+00:00", "2026-11-28T11:30:00+00:00"
)


def test_the_latest_inpatient_stay_is_the_one_that_began_last() -> None:
    """A later A&E visit, a planned admission and one entered in error are
    no stays; by the moment each began, across offsets."""
    earlier = _encounter("old", "ACUTE", "finished", "2026-01-02T10:00:00+00:00", "2026-01-05")
    visit = _encounter("ae", "EMER", "finished", "2026-12-01T10:00:00+00:00")
    planned = _encounter("plan", "IMP", "planned", "2026-12-10T10:00:00+00:00")
    wrong = _encounter("wrong", "NONAC", "entered-in-error", "2026-12-02T10:00:00+00:00")
    found = _stay(earlier, FINISHED, visit, planned, wrong)
    assert (found.encounter, found.discharged, found.admitted, found.left) == (
        "Encounter/in",
        True,
        "2026-11-24",
        "2026-11-28",
    )
    assert found.hospital == "Whittington Hospital (RKE)" and found.hospital_ods == "RKE"
    # 01:00 in London on the 25th is midnight UTC, before 00:30 UTC.
    late = _encounter("late", "IMP", "in-progress", "2026-11-25T01:00:00+01:00")
    later = _encounter("later", "IMP", "in-progress", "2026-11-25T00:30:00+00:00")
    assert _stay(later, late).encounter == "Encounter/later"
    assert latest_stay(_by_reference(visit, planned), _name) is None


def test_a_stay_row_says_where_when_and_where_to_in_words() -> None:
    encounter = {
        **FINISHED,
        "location": [{"location": {"display": "Coleridge Ward"}}],
        "hospitalization": {
            "dischargeDisposition": {
                "coding": [{"code": "85", "display": "Non-NHS run Care Home"}],
                "text": "Non-NHS run Care Home",
            }
        },
    }
    row = stay_row(_stay(encounter), encounter, lambda reference: None)
    assert row.what == "Discharged 28 Nov 2026 11:30"
    assert row.detail == (
        "Whittington Hospital (RKE); Coleridge Ward; Discharged to: Non-NHS run Care Home"
    )
    assert (row.when, row.status) == ("Admitted 24 Nov 2026 14:05", "Finished")
    going_on = _encounter("now", "IMP", "in-progress", "2026-12-05T08:15:00+00:00")
    row = stay_row(_stay(going_on), going_on, lambda reference: None)
    assert row.what == "In hospital since 5 Dec 2026 08:15"
    assert row.detail == "Whittington Hospital (RKE)"


def test_what_the_hospital_sent_names_the_stay_or_is_its_own_since_admission() -> None:
    named = {
        "resourceType": "Composition",
        "id": "letter",
        "status": "final",
        "date": "2026-11-28",
        "encounter": {"reference": "Encounter/in"},
    }
    result = {
        "resourceType": "Observation",
        "id": "culture",
        "meta": {"source": HOSPITAL},
        "effectiveDateTime": "2026-12-01",
    }
    older = {**result, "id": "old", "effectiveDateTime": "2026-10-01"}
    of_another = {**result, "id": "other", "encounter": {"reference": "Encounter/hidden"}}
    of_a_visit = {**result, "id": "clinic", "encounter": {"reference": "Encounter/clinic"}}
    clinic = _encounter("clinic", "AMB", "finished", "2026-12-01T09:00:00+00:00")
    someone_elses = {**result, "id": "gp", "meta": {"source": "urn:ods:F84003"}}
    in_error = {**named, "id": "error", "status": "entered-in-error"}
    records = _by_reference(
        FINISHED, named, result, older, of_another, of_a_visit, clinic, someone_elses, in_error
    )
    assert sent(_stay(FINISHED), records) == [
        "Composition/letter",
        "Observation/culture",
        "Observation/clinic",
    ]


def _medicine(res_id: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": res_id,
        "status": "active",
        "medicationCodeableConcept": {"text": res_id.capitalize()},
        **more,
    }


def test_medicines_started_are_new_and_stopped_ones_dated_from_the_stay() -> None:
    started = _medicine("doxycycline", effectivePeriod={"start": "2026-11-26"})
    by_the_hospital = {
        **_medicine("lansoprazole"),
        "resourceType": "MedicationRequest",
        "intent": "order",
        "meta": {"source": HOSPITAL},
        "authoredOn": "2026-12-02",
    }
    # Listed again at discharge, but given at the home before the stay.
    continued = {
        **by_the_hospital,
        "id": "donepezil",
        "medicationCodeableConcept": {"text": "Donepezil"},
    }
    given = {
        "resourceType": "MedicationAdministration",
        "id": "given",
        "status": "completed",
        "medicationCodeableConcept": {"text": "Donepezil"},
        "effectiveDateTime": "2026-11-20T21:00:00+00:00",
    }
    afterwards = _medicine("sertraline", effectivePeriod={"start": "2026-12-03"})
    of_another = {**started, "id": "other", "context": {"reference": "Encounter/hidden"}}
    stopped = _medicine(
        "amlodipine", status="stopped", effectivePeriod={"start": "2016-03-21", "end": "2026-11-27"}
    )
    long_ago = _medicine(
        "amoxicillin",
        status="completed",
        effectivePeriod={"start": "2024-12-02", "end": "2024-12-09"},
    )
    issue = {
        **by_the_hospital,
        "id": "issue",
        "status": "completed",
        "medicationCodeableConcept": {"text": "Issue"},
        "basedOn": [{"reference": "MedicationRequest/plan"}],
    }
    records = _by_reference(
        FINISHED,
        started,
        by_the_hospital,
        continued,
        given,
        afterwards,
        of_another,
        stopped,
        long_ago,
        issue,
    )
    found = changes(_stay(FINISHED), records, ORIGINS)
    assert [fact.members for fact in found.started] == [
        ("MedicationRequest/lansoprazole",),
        ("MedicationStatement/doxycycline",),
    ]
    assert [(fact.members, fact.row.when) for fact in found.stopped] == [
        (("MedicationStatement/amlodipine",), "Stopped 27 Nov 2026")
    ]
    # A stay going on has changed nothing yet.
    going_on = {**FINISHED, "status": "in-progress"}
    nothing = changes(_stay(going_on), {**records, "Encounter/in": going_on}, ORIGINS)
    assert (nothing.started, nothing.stopped) == ([], [])
