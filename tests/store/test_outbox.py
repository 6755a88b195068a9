"""The outbox of care-pathway events (``gateway.notifications``): each event a
write is, recorded in the write's unit of work, on each store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import PreconditionFailed
from gateway.interactions import bundle, write
from gateway.interactions.types import ReturnPreference
from gateway.loading.records import load
from gateway.notifications import outbox
from gateway.notifications.topics import PREFIX, events
from gateway.store import Store
from tests.support.acting import as_source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOSPITAL = "R9D"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _encounter(patient: str, status: str, klass: str = "IMP", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": ACT_CODE, "code": klass},
        "subject": {"reference": f"Patient/{patient}"},
        **more,
    }


def _topics(store: Store) -> list[tuple[str, str, int]]:
    return [
        (event.topic.removeprefix(PREFIX), event.res_id, event.version)
        for event in outbox.since(store, 0)
    ]


def test_a_stay_is_an_admission_then_a_discharge_whichever_way_it_is_written(
    store: Store,
) -> None:
    acting = as_source(HOSPITAL)
    patient = write.create(store, acting, "Patient", {"resourceType": "Patient"}).version.res_id
    stay = f"{HOSPITAL}-visit-1"
    write.update(store, acting, "Encounter", stay, {**_encounter(patient, "planned"), "id": stay})
    assert _topics(store) == []  # planned: not yet an admission
    write.update(
        store, acting, "Encounter", stay, {**_encounter(patient, "in-progress"), "id": stay}
    )
    # Written again, still in progress (a ward transfer): no second admission.
    write.update(
        store,
        acting,
        "Encounter",
        stay,
        {**_encounter(patient, "in-progress"), "id": stay, "serviceType": {"text": "Ward 7"}},
    )
    write.update(store, acting, "Encounter", stay, {**_encounter(patient, "finished"), "id": stay})
    assert _topics(store) == [("admission", stay, 2), ("discharge", stay, 4)]
    events_on_file = outbox.since(store, 0)
    assert {event.patient_id for event in events_on_file} == {patient}
    assert [event.number for event in events_on_file] == sorted(e.number for e in events_on_file)
    assert outbox.since(store, events_on_file[0].number) == events_on_file[1:]


def test_an_emergency_attendance_a_death_and_what_is_no_event(store: Store) -> None:
    acting = as_source(HOSPITAL)
    patient = write.create(store, acting, "Patient", {"resourceType": "Patient"}).version
    attendance = write.create(
        store, acting, "Encounter", _encounter(patient.res_id, "arrived", "EMER")
    ).version
    write.create(store, acting, "Encounter", _encounter(patient.res_id, "in-progress", "AMB"))
    write.update(
        store,
        acting,
        "Patient",
        patient.res_id,
        {"resourceType": "Patient", "id": patient.res_id, "deceasedDateTime": "2026-12-01"},
    )
    write.update(
        store,
        acting,
        "Patient",
        patient.res_id,
        {"resourceType": "Patient", "id": patient.res_id, "deceasedBoolean": True},
    )
    assert _topics(store) == [
        ("ae-attendance", attendance.res_id, 1),
        ("death", patient.res_id, 2),
    ]


def test_an_event_is_on_file_exactly_when_its_change_is(store: Store) -> None:
    """A transaction that fails leaves no event of the writes it undid."""
    acting = as_source(HOSPITAL)
    patient = write.create(store, acting, "Patient", {"resourceType": "Patient"}).version.res_id
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _encounter(patient, "in-progress"),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {
                # Written after the Encounter (PUT comes after POST), and
                # refused: the Encounter's admission goes with it.
                "resource": {"resourceType": "Patient", "id": patient},
                "request": {"method": "PUT", "url": f"Patient/{patient}", "ifMatch": 'W/"9"'},
            },
        ],
    }
    with pytest.raises(PreconditionFailed):
        bundle.transaction(
            store, acting, transaction, base_url="http://x", prefer=ReturnPreference.MINIMAL
        )
    assert _topics(store) == []
    transaction["entry"].pop()
    bundle.transaction(
        store, acting, transaction, base_url="http://x", prefer=ReturnPreference.MINIMAL
    )
    assert [topic for topic, _, _ in _topics(store)] == ["admission"]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, _encounter("p", "in-progress"), ["admission"]),
        (None, _encounter("p", "finished"), ["discharge"]),
        (_encounter("p", "in-progress"), _encounter("p", "in-progress"), []),
        (
            _encounter("p", "in-progress", "EMER"),
            _encounter("p", "finished", "EMER"),
            ["discharge"],
        ),
        (None, _encounter("p", "in-progress", "EMER"), ["admission", "ae-attendance"]),
        (None, _encounter("p", "in-progress", "AMB"), []),
        (None, {"resourceType": "Patient", "deceasedBoolean": False}, []),
        (
            {"resourceType": "Patient", "deceasedBoolean": True},
            {"resourceType": "Patient", "deceasedBoolean": True},
            [],
        ),
    ],
)
def test_which_changes_are_which_events(
    before: dict[str, Any] | None, after: dict[str, Any], expected: list[str]
) -> None:
    assert [topic.key for topic in events(before, after)] == expected


def test_a_care_homes_record_loaded_with_a_change_is_a_red_bag_event(
    store: Store, tmp_path: Path
) -> None:
    record = FIXTURES / "carehome" / "albert-nkemelu.json"
    export = tmp_path / "export.ndjson"
    export.write_bytes(orjson.dumps(orjson.loads(record.read_bytes())) + b"\n")
    report = load(store, "care-home", "VM4X2", [export])
    assert report.loaded == 1, report.rejections
    (event,) = outbox.since(store, 0)
    assert event.topic == PREFIX + "red-bag"
    assert (event.res_type, event.res_id) == ("Patient", event.patient_id)
    patient = store.read("Patient", event.res_id)
    assert patient is not None and event.version == patient.version
    # The same export again changes nothing: no second event.
    assert load(store, "care-home", "VM4X2", [export]).unchanged == 1
    assert len(outbox.since(store, 0)) == 1
