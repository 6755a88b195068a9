"""Secret files are their owner's alone from the moment they exist: the
gateway's signing keys, the private keys `gateway clients add
--generate-key` and the demo write, bulk export files (personal data) and
a SQLite database (which holds the token-signing key and every record).

Each test runs with a umask of 0, under which a file opened the ordinary
way would be readable and writable by everyone: the modes seen are the
ones the code asks for, not the ones the umask happened to leave."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import keyfiles
from gateway.cli import main
from gateway.demo import launch
from gateway.demo.world import organisations
from gateway.export.runner import _TypeFiles
from gateway.store import Store, open_store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_gateway_s_own_signing_keys_are_the_owner_s_alone(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-key.pem"
    keyfiles.load_or_create_ed25519(path)
    assert _mode(path) == 0o600


def test_a_secret_file_and_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o777)
    keyfiles.secret_dir(folder)  # an existing folder is closed too
    keyfiles.write_secret(folder / "key.pem", b"secret")
    assert _mode(folder) == 0o700
    assert _mode(folder / "key.pem") == 0o600
    with pytest.raises(FileExistsError):
        keyfiles.write_secret(folder / "key.pem", b"another")
    (tmp_path / "was-open.txt").write_bytes(b"")
    (tmp_path / "was-open.txt").chmod(0o666)
    os.close(keyfiles.open_secret(tmp_path / "was-open.txt"))
    assert _mode(tmp_path / "was-open.txt") == 0o600


def test_a_key_file_others_may_read_is_warned_of_when_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "document-key.pem"
    keyfiles.load_or_create_ed25519(path)
    with caplog.at_level(logging.WARNING, logger="gateway.keyfiles"):
        keyfiles.load_or_create_ed25519(path)
        assert not caplog.records
        path.chmod(0o640)
        keyfiles.load_or_create_ed25519(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"key file {path} may be read by others (mode 640): chmod 600 it"
    ]


def test_a_client_key_generated_by_the_cli_is_the_owner_s_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path}/gateway.db")
    key = tmp_path / "gp-system.pem"
    added = main(
        ["clients", "add", "gp-system", "--org", "A81001", "--org-name", "Riverside Surgery",
         "--kind", "gp-practice", "--scope", "system/*.rs", "--generate-key", str(key)]
    )  # fmt: skip
    assert added == 0
    assert _mode(key) == 0o600


def test_the_demo_s_client_keys_are_the_owner_s_alone(store: Store, tmp_path: Path) -> None:
    launch._register(store, tmp_path)
    keys = tmp_path / "keys"
    assert _mode(keys) == 0o700
    files = sorted(keys.iterdir())
    assert len(files) == len(organisations())
    assert {_mode(f) for f in files} == {0o600}


def test_bulk_export_files_are_the_owner_s_alone(tmp_path: Path) -> None:
    files = _TypeFiles(tmp_path, "Patient", limit=1)
    files.write(b'{"resourceType": "Patient"}')
    files.write(b'{"resourceType": "Patient"}')
    files.close()
    written = sorted(tmp_path.iterdir())
    assert len(written) == 2
    assert {_mode(f) for f in written} == {0o600}


def test_a_new_sqlite_database_is_the_owner_s_alone(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/gateway.db")
    try:
        store.migrate()
        written = [tmp_path / f"gateway.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in written)
        assert {_mode(f) for f in written} == {0o600}
    finally:
        store.close()
