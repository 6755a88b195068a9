"""A load is audited as the gateway acting for the source organisation: each
unit of work that writes a source's records commits, with them, an entry
naming the source, the people and every version written."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.audit import log
from gateway.audit.checkpoint import load_or_create_signer
from gateway.loading import load
from gateway.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
FILES = [FIXTURES / "admit.hl7", FIXTURES / "discharge-and-errors.hl7"]


def _loads(store: Store) -> list[tuple[int, str, dict[str, object]]]:
    rows = store.select(
        "SELECT idx, org_ods, entry FROM audit_entry WHERE subtype = 'load' ORDER BY idx", []
    )
    return [(int(str(i)), str(org), json.loads(bytes(entry))) for i, org, entry in rows]  # type: ignore[arg-type]


def test_a_load_leaves_an_entry_naming_its_source_people_and_versions(
    store: Store, tmp_path: Path
) -> None:
    report = load(store, "hl7v2", "RKE", FILES)
    assert report.loaded == 2
    loads = _loads(store)
    assert len(loads) == len(FILES)  # one unit of work a file here
    assert {org for _, org, _ in loads} == {"RKE"}
    for _, _, event in loads:
        agents = event["agent"]
        assert agents[0]["who"]["identifier"]["value"] == "RKE"  # type: ignore[index]
        assert agents[1]["who"]["identifier"]["value"] == "load:hl7v2"  # type: ignore[index]
    written = {
        e["what"]["reference"]  # type: ignore[index]
        for _, _, event in loads
        for e in event["entity"]  # type: ignore[attr-defined]
        if "_history/" in e["what"]["reference"]  # type: ignore[index]
    }
    current = store.select(
        "SELECT res_type, res_id, version FROM resource_current "
        "WHERE res_type IN ('Patient', 'Encounter')",
        [],
    )
    for res_type, res_id, version in current:
        assert f"{res_type}/{res_id}/_history/{version}" in written
    (patient_id,) = [str(row[1]) for row in current if row[0] == "Patient"]
    for index, _, _ in loads:
        people = store.select("SELECT patient_id FROM audit_patient WHERE idx = ?", [index])
        assert [str(row[0]) for row in people] == [patient_id]
    # Loading again writes nothing, and so audits nothing more.
    load(store, "hl7v2", "RKE", FILES)
    assert len(_loads(store)) == len(FILES)
    signer = load_or_create_signer(tmp_path / "audit.pem")
    log.sign_checkpoint(store, signer)
    assert log.verify(store, signer.verifier_key()).intact
