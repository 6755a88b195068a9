"""A store written before mapped ids were keyed moves to the keyed ids
(``gateway.loading.ids.ensure_keyed_ids``): every version, reference, index
row and ledger note follows, the audit log stays as it was written, and the
data then reads, searches and loads on as if it had always been keyed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gateway import fhirjson
from gateway.audit.log import tree_head
from gateway.audit.report import accesses
from gateway.loading import load
from gateway.loading.ids import ensure_keyed_ids
from gateway.loading.sources import READERS
from gateway.search.index import index_entries
from gateway.store import Store, StoredVersion, as_bytes
from mappings.identity import id_basis, keyed_id
from tests.conftest import access_token, make_client
from tests.support.ids import BASIS, rekeyed, unkeyed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = [
    ("hl7v2", "RKE", "hl7v2/admit.hl7"),
    ("cld", "713", "cld/return.csv"),
    ("gp-connect", "F84003", "gpconnect/structured-records.ndjson"),
    ("care-home", "VM4X2", "carehome/export.ndjson"),
]
COUNCIL = "713"
PERSON = "9990000018"  # in the council's return, with an open service: its to read
# A Patient a client created at a UUID v5 of its own: not the loader's.
CLIENTS_OWN = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/patients/42"))


def _versions(store: Store) -> dict[tuple[str, str, int], Any]:
    rows = store.select("SELECT res_type, res_id, version, content FROM resource_version", [])
    return {
        (str(t), str(i), int(str(v))): None if c is None else fhirjson.loads(as_bytes(c))
        for t, i, v, c in rows
    }


def _audit(store: Store) -> list[tuple[Any, ...]]:
    return [
        (int(str(idx)), as_bytes(entry), as_bytes(leaf))
        for idx, entry, leaf in store.select(
            "SELECT idx, entry, leaf FROM audit_entry ORDER BY idx", []
        )
    ]


def _council(store: Store) -> Any:
    token = access_token(store, client_id="council-app", kind="council", org=COUNCIL)
    return make_client(store, token=token)


def _client_created_at_a_uuid_v5(store: Store, names: str) -> None:
    """As an earlier gateway kept a client's PUT at an id of its choosing
    (this one links to a loaded person)."""
    instant = fhirjson.instant()
    patient = {
        "resourceType": "Patient",
        "id": CLIENTS_OWN,
        "meta": {"versionId": "1", "lastUpdated": instant, "source": "urn:ods:A81001"},
        "link": [{"other": {"reference": f"Patient/{names}"}, "type": "seealso"}],
    }
    with store.unit_of_work() as uow:
        uow.append(
            StoredVersion("Patient", CLIENTS_OWN, 1, instant, "PUT", fhirjson.dumps(patient)),
            index_entries(patient),
        )


def test_a_store_written_before_ids_were_keyed_moves_to_the_keyed_ids(
    store: Store, tmp_path: Path
) -> None:
    with unkeyed() as bases:
        for fmt, source, name in SOURCES:
            assert load(store, fmt, source, [FIXTURES / name]).loaded > 0
    old = id_basis("NHS", "Patient", PERSON)  # the person's id before: anyone could compute it
    with _council(store) as api:
        assert api.get(f"/fhir/Patient/{old}").status_code == 200  # audited under that id
        posted = api.post(
            "/fhir/Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Visit note"},
                "subject": {"reference": f"Patient/{old}"},
            },
        )
        assert posted.status_code == 201, posted.text
        note = posted.json()["id"]
    _client_created_at_a_uuid_v5(store, old)

    before = _versions(store)
    moving = {i for (t, i, _) in before if i in bases}
    assert old in moving and len(moving) > 40
    audit, head = _audit(store), tree_head(store)

    assert ensure_keyed_ids(store) == len({(t, i) for (t, i, _) in before if i in moving})
    assert ensure_keyed_ids(store) is None  # once: recorded as done
    new = keyed_id(old)
    # The audit log is as it was written: its entries keep the ids they
    # name. The person's access report still finds what was recorded under
    # the old id.
    assert _audit(store) == audit
    assert tree_head(store) == head
    assert accesses(store, new) and accesses(store, new) == accesses(store, old)

    # Every version of every resource, under its new id where it moved, its
    # content the same but for the moved ids (references, Provenance targets,
    # identifiers made from a person's id).
    after = _versions(store)
    assert len(after) == len(before)
    for (res_type, res_id, version), content in before.items():
        moved_to = keyed_id(res_id) if res_id in moving else res_id
        assert after[(res_type, moved_to, version)] == rekeyed(content, moving)
    assert not {i for (_, i, _) in after} & moving
    assert not set(BASIS.findall(repr(after))) & moving
    assert store.read("Patient", old) is None
    assert store.read("Patient", new) is not None
    assert store.vread("Patient", new, 1) is not None
    assert after[("Patient", CLIENTS_OWN, 1)]["link"][0]["other"] == {"reference": f"Patient/{new}"}

    # The index follows: search by reference finds by the new id only.
    with _council(store) as api:
        found = api.get(f"/fhir/Observation?subject=Patient/{new}").json()
        ids = {e["resource"]["id"] for e in found.get("entry", [])}
        assert note in ids and len(ids) > 1  # the client's note and the council's own
        assert "entry" not in api.get(f"/fhir/Observation?subject=Patient/{old}").json()
        assert api.get(f"/fhir/Patient/{new}").status_code == 200
        assert api.get(f"/fhir/Patient/{old}").status_code == 404
        assert api.get(f"/fhir/EpisodeOfCare?patient={new}&status=active").json()["entry"]
    marks = ", ".join("?" for _ in moving)
    for table in ("search_token", "search_string", "search_date", "search_reference"):
        assert not store.select(f"SELECT 1 FROM {table} WHERE res_id IN ({marks})", list(moving))
    assert not store.select(
        f"SELECT 1 FROM search_reference WHERE target_id IN ({marks})", list(moving)
    )
    assert store.select(
        "SELECT 1 FROM search_reference WHERE res_type = 'Provenance' AND target_id = ?", [new]
    )

    # The ledger follows.
    for patient_id, resources in store.select(
        "SELECT patient_id, resources FROM mapping_record", []
    ):
        assert str(patient_id) not in moving
        assert not set(BASIS.findall(str(resources))) & moving
    assert _audit(store)[: len(audit)] == audit  # since then, only the requests above
    assert tree_head(store, head[0]) == head

    # Mapped now, every source record lands on what is on file: a message
    # sent again changes nothing and makes nothing new.
    current = store.select("SELECT res_type, res_id FROM resource_current", [])
    for fmt, source, name in SOURCES:
        with (FIXTURES / name).open("rb") as stream:
            for record in READERS[fmt](stream, source):
                for resource in record.resources or ():
                    assert store.read(resource["resourceType"], resource["id"]) is not None
    resent = tmp_path / "resent.hl7"
    text = (FIXTURES / "hl7v2" / "admit.hl7").read_text("latin-1")
    resent.write_text(text.replace("|MSG0001|", "|MSG0101|"), encoding="latin-1")
    report = load(store, "hl7v2", "RKE", [resent])
    assert (report.loaded, report.unchanged) == (0, 1)
    assert store.select("SELECT res_type, res_id FROM resource_current", []) == current


def test_a_new_store_has_nothing_to_move(store: Store) -> None:
    assert ensure_keyed_ids(store) == 0
    assert ensure_keyed_ids(store) is None
