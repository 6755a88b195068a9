"""The deployment's key for mapped ids (``gateway.loading.ids``): made on
first start, kept in the database, the one every process of a deployment
maps with. An outsider cannot compute a person's id from their NHS number;
the deployment maps the same record to the same id on every load.
"""

from __future__ import annotations

from pathlib import Path

from gateway.loading import load
from gateway.loading.ids import ensure_keyed_ids, id_key, use_store_id_key
from gateway.store import Store, open_store
from mappings.identity import ID_KEY_BYTES, id_basis, use_id_key
from tests.conftest import access_token, make_client
from tests.support.ids import TEST_ID_KEY

ADMISSION = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2" / "admit.hl7"
NHS_NUMBER = "9990000034"  # the person admit.hl7 admits
HOSPITAL = "RKE"


def _open(url: str) -> Store:
    store = open_store(url)
    store.migrate()
    return store


def _patients(store: Store) -> list[str]:
    return [
        str(row[0])
        for row in store.select(
            "SELECT res_id FROM resource_current WHERE res_type = 'Patient'", []
        )
    ]


def _current_ids(store: Store) -> set[tuple[str, str]]:
    rows = store.select("SELECT res_type, res_id FROM resource_current", [])
    return {(str(res_type), str(res_id)) for res_type, res_id in rows}


def test_a_store_makes_its_key_on_first_use_and_keeps_it(store_url: str) -> None:
    store = _open(store_url)
    try:
        key = id_key(store)
        assert len(key) == ID_KEY_BYTES
        assert key != TEST_ID_KEY
        assert id_key(store) == key
    finally:
        store.close()
    reopened = _open(store_url)  # the next start, or another worker or node
    try:
        assert id_key(reopened) == key
    finally:
        reopened.close()


def test_an_outsider_cannot_compute_a_patient_id_from_an_nhs_number(
    store: Store, tmp_path: Path
) -> None:
    """Two deployments, each with its own key, give one person different
    ids, neither of them what anyone can compute from the NHS number (its
    basis, the id before ids were keyed); asking for that finds nothing."""
    found = {}
    other = _open(f"sqlite:///{tmp_path}/other.db")
    try:
        for deployment in (store, other):
            use_store_id_key(deployment)
            assert load(deployment, "hl7v2", HOSPITAL, [ADMISSION]).loaded == 1
            (found[deployment],) = _patients(deployment)
    finally:
        other.close()
    use_id_key(TEST_ID_KEY)
    outsiders = id_basis("NHS", "Patient", NHS_NUMBER)
    assert len({found[store], found[other], outsiders}) == 3
    assert store.read("Patient", outsiders) is None

    token = access_token(store, client_id="rke-pas", kind="hospital", org=HOSPITAL)
    with make_client(store, token=token) as api:
        assert api.get(f"/fhir/Patient/{found[store]}").status_code == 200
        assert api.get(f"/fhir/Patient/{outsiders}").status_code == 404
        named = api.get(f"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS_NUMBER}")
        assert [e["resource"]["id"] for e in named.json()["entry"]] == [found[store]]


def test_the_same_record_maps_to_the_same_id_on_every_load(store_url: str, tmp_path: Path) -> None:
    """Across loads and restarts of one deployment: the key is the store's,
    so a message sent again (under a new control id) lands on the resources
    it wrote before, and nothing new is made."""
    store = _open(store_url)
    try:
        ensure_keyed_ids(store)
        assert load(store, "hl7v2", HOSPITAL, [ADMISSION]).loaded == 1
        before = _current_ids(store)
    finally:
        store.close()
    use_id_key(None)  # a new process: no key until the store's is put in force

    resent = tmp_path / "resent.hl7"
    resent.write_text(
        ADMISSION.read_text("latin-1").replace("|MSG0001|", "|MSG0101|"), encoding="latin-1"
    )
    store = _open(store_url)
    try:
        assert ensure_keyed_ids(store) is None  # nothing to move: recorded as done
        report = load(store, "hl7v2", HOSPITAL, [resent])
        assert (report.loaded, report.unchanged) == (0, 1)
        assert _current_ids(store) == before
    finally:
        store.close()
