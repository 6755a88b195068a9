"""The demo's directory of organisations: written beside its source files,
loaded first, so every organisation its documents show has a name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from gateway.demo.generate import DIRECTORY, Manifest, write_directory
from gateway.demo.launch import prepare
from gateway.demo.world import organisations
from gateway.directory import NOT_IN_DIRECTORY, look_up
from gateway.documents.sections import RED_BAG, SUMMARY
from gateway.operations.documents import document
from gateway.store import open_store
from gateway.store.base import StoredVersion
from tests.conftest import keep_test_id_key

TODAY = date(2026, 11, 24)


def test_the_directory_lists_every_organisation_of_the_demo(tmp_path: Path) -> None:
    written = write_directory(tmp_path / DIRECTORY)
    assert (written.format, written.path, written.records) == (
        "organisations",
        DIRECTORY,
        len(organisations()),
    )
    lines = (tmp_path / DIRECTORY).read_text("utf-8").splitlines()
    assert lines[0] == "ods_code,name,kind,address"
    assert len(lines) == 1 + len(organisations())


def test_every_organisation_the_demos_documents_show_has_a_name(tmp_path: Path) -> None:
    """Every summary and Red Bag of a small demo, built as one who may see
    everything, names each organisation with its code beside it: no code
    is shown bare, and none is unknown to the directory."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    store = open_store(url)
    try:
        store.migrate()
        keep_test_id_key(store)
        prepared = prepare(store, url, tmp_path / "demo", 40, 7, TODAY, say=lambda _: None)
        assert any(f.format == "organisations" for f in prepared.manifest.files)
        assert Manifest.read(tmp_path / "demo") is not None
        codes = [o.ods for o in organisations()]
        assert sorted(look_up(store, codes)) == sorted(codes)
        patients = store.select(
            "SELECT res_id FROM resource_current WHERE res_type = 'Patient' AND deleted = 0", []
        )
        assert patients
        shown = 0
        for (res_id,) in patients:
            patient = store.read("Patient", str(res_id))
            assert isinstance(patient, StoredVersion)
            for kind in (SUMMARY, RED_BAG):
                built = document(
                    store,
                    kind,
                    patient,
                    visible=lambda version: True,
                    readable=lambda res_type: True,
                    base_url="http://gateway/fhir",
                )
                composition = built.bundle["entry"][0]["resource"]
                divs = [composition["text"]["div"]]
                divs += [s["text"]["div"] for s in composition["section"] if "text" in s]
                text = "".join(divs)
                assert NOT_IN_DIRECTORY not in text
                for code in codes:
                    assert f">{code}<" not in text and f"ODS {code}" not in text
                    assert f"{code} (" not in text
                shown += sum(f"({code})" in text for code in codes)
        assert shown > 0
    finally:
        store.close()
