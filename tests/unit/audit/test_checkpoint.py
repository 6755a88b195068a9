"""Checkpoints: C2SP signed notes with Ed25519."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.audit.checkpoint import (
    BadCheckpoint,
    Checkpoint,
    NotTheLogsKey,
    load_or_create_signer,
    open_note,
    parse_verifier_key,
    signer_of_log,
)

ROOT = bytes(range(32))


def test_a_signed_note_opens_with_the_published_key(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "k.pem")
    note = signer.sign(Checkpoint(signer.name, 42, ROOT))
    body, _, signature = note.partition("\n\n")
    assert body.split("\n")[:2] == [signer.name, "42"]
    assert signature.startswith("\u2014 " + signer.name + " ")
    assert open_note(note, signer.verifier_key()) == Checkpoint(signer.name, 42, ROOT)
    assert parse_verifier_key(signer.verifier_key())[0] == signer.name


def test_the_key_is_created_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    first = load_or_create_signer(path)
    assert os.stat(path).st_mode & 0o077 == 0
    assert load_or_create_signer(path).verifier_key() == first.verifier_key()


def test_forgeries_do_not_open(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "a.pem")
    other = load_or_create_signer(tmp_path / "b.pem")
    note = signer.sign(Checkpoint(signer.name, 7, ROOT))
    with pytest.raises(BadCheckpoint):
        open_note(note.replace("\n7\n", "\n8\n", 1), signer.verifier_key())
    with pytest.raises(BadCheckpoint):
        open_note(note, other.verifier_key())  # signed by someone else
    with pytest.raises(BadCheckpoint):
        open_note(note.split("\n\n")[0], signer.verifier_key())  # unsigned
    with pytest.raises(BadCheckpoint):
        parse_verifier_key("not+a+key")


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "audit.pem"
    with ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(_key_of, [path] * 8))
    assert keys == {load_or_create_signer(path).verifier_key()}
    assert [p.name for p in tmp_path.iterdir()] == ["audit.pem"]


def _key_of(path: Path) -> str:
    return load_or_create_signer(path).verifier_key()


def test_a_log_no_key_signed_yet_gets_a_new_key(tmp_path: Path) -> None:
    signer = signer_of_log(tmp_path / "k.pem", None)
    assert (tmp_path / "k.pem").exists()
    assert signer_of_log(tmp_path / "k.pem", None).verifier_key() == signer.verifier_key()


def test_a_signed_log_takes_only_the_key_that_signed_it(tmp_path: Path) -> None:
    own = load_or_create_signer(tmp_path / "own.pem")
    latest = own.sign(Checkpoint(own.name, 7, ROOT))
    assert signer_of_log(tmp_path / "own.pem", latest).verifier_key() == own.verifier_key()
    load_or_create_signer(tmp_path / "other.pem")
    with pytest.raises(NotTheLogsKey, match="not the key that signed"):
        signer_of_log(tmp_path / "other.pem", latest)
    with pytest.raises(NotTheLogsKey, match="does not exist"):
        signer_of_log(tmp_path / "missing.pem", latest)
    assert not (tmp_path / "missing.pem").exists()
