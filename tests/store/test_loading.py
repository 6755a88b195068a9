"""Loading source files through the write path, on both stores."""

from __future__ import annotations

from pathlib import Path

from gateway import fhirjson
from gateway.loading import load
from gateway.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
FILES = [FIXTURES / "admit.hl7", FIXTURES / "discharge-and-errors.hl7"]


def test_hl7v2_files_load_once_with_rejections_reported(store: Store) -> None:
    report = load(store, "hl7v2", "rke", FILES)
    assert (report.records, report.loaded, report.unchanged) == (4, 2, 0)
    assert [(r.record, r.key) for r in report.rejections] == [
        ("message 2 (byte 303)", "MSG0003"),
        ("message 3 (byte 444)", ""),
    ]
    assert "Modulus 11" in report.rejections[0].reason
    assert report.written["Patient"] == 2 and report.written["Encounter"] == 2

    encounters = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = 'Encounter'", []
    )
    (encounter_id,) = [str(row[0]) for row in encounters]
    stored = store.read("Encounter", encounter_id)
    assert stored is not None and stored.version == 2
    encounter = fhirjson.loads(stored.content or b"")
    assert encounter["status"] == "finished" and encounter["meta"]["source"] == "urn:ods:RKE"
    provenance = store.select(
        "SELECT COUNT(*) FROM resource_current WHERE res_type = 'Provenance'", []
    )
    assert int(str(provenance[0][0])) >= 2

    again = load(store, "hl7v2", "RKE", FILES)
    assert (again.loaded, again.unchanged, len(again.rejections)) == (0, 2, 2)
    assert store.read("Encounter", encounter_id).version == 2  # type: ignore[union-attr]
