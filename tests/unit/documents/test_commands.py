"""``gateway documents verify FILE``: exit 0 on a document as the gateway
signed it, 1 naming what is wrong, 2 when the input cannot be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.cli import main
from gateway.documents.keys import register
from gateway.documents.signature import DocumentSigner, load_or_create_document_key
from gateway.store import open_store
from tests.unit.documents.test_signature import GATEWAY, WHEN, document


@pytest.fixture
def signer(tmp_path: Path) -> DocumentSigner:
    return load_or_create_document_key(tmp_path / "var" / "document-key.pem")


def write(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def jwks(tmp_path: Path, signer: DocumentSigner) -> Path:
    return write(tmp_path / "jwks.json", {"keys": [signer.public_jwk()]})


def test_a_document_as_signed_verifies(
    tmp_path: Path, signer: DocumentSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = write(tmp_path / "red-bag.json", signer.sign(document(), WHEN, GATEWAY))
    assert main(["documents", "verify", str(signed), "--key", str(jwks(tmp_path, signer))]) == 0
    assert capsys.readouterr().out == f"verified: signed by {signer.kid} at {WHEN}\n"


def test_a_tampered_document_fails_saying_so(
    tmp_path: Path, signer: DocumentSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = signer.sign(document(), WHEN, GATEWAY)
    bundle["entry"][2]["resource"]["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 10
    tampered = write(tmp_path / "red-bag.json", bundle)
    assert main(["documents", "verify", str(tampered), "--key", str(jwks(tmp_path, signer))]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "changed after it was signed" in captured.err


def test_an_unsigned_document_fails(
    tmp_path: Path, signer: DocumentSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = write(tmp_path / "doc.json", document())
    assert main(["documents", "verify", str(unsigned), "--key", str(jwks(tmp_path, signer))]) == 1
    assert "not signed" in capsys.readouterr().err


@pytest.mark.parametrize("form", ["jwk", "public-pem", "private-pem"])
def test_the_key_may_be_a_jwk_or_a_pem(tmp_path: Path, signer: DocumentSigner, form: str) -> None:
    if form == "jwk":
        key = write(tmp_path / "key.jwk", signer.public_jwk())
    elif form == "public-pem":
        key = tmp_path / "key.pub.pem"
        key.write_bytes(
            signer.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        key = tmp_path / "var" / "document-key.pem"
    signed = write(tmp_path / "doc.json", signer.sign(document(), WHEN, GATEWAY))
    assert main(["documents", "verify", str(signed), "--key", str(key)]) == 0


def test_without_key_the_gateways_own_key_is_used(
    tmp_path: Path,
    signer: DocumentSigner,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GATEWAY_DOCUMENT_KEY", raising=False)
    signed = write(tmp_path / "doc.json", signer.sign(document(), WHEN, GATEWAY))
    # Next to the SQLite database, as the server keeps it...
    database = f"sqlite:///{tmp_path}/var/gateway.db"
    assert main(["documents", "verify", str(signed), "--database-url", database]) == 0
    # ...or where GATEWAY_DOCUMENT_KEY says.
    monkeypatch.setenv("GATEWAY_DOCUMENT_KEY", str(tmp_path / "var" / "document-key.pem"))
    assert main(["documents", "verify", str(signed)]) == 0
    # Another gateway's key does not verify it, and none is made to try.
    other = tmp_path / "elsewhere" / "document-key.pem"
    monkeypatch.setenv("GATEWAY_DOCUMENT_KEY", str(other))
    capsys.readouterr()
    assert main(["documents", "verify", str(signed)]) == 2
    assert "no document key" in capsys.readouterr().err
    assert not other.exists()
    load_or_create_document_key(other)
    assert main(["documents", "verify", str(signed)]) == 1


def test_without_key_every_nodes_published_key_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document another node signed verifies on this node without --key:
    the database publishes that node's key, as /documents/jwks.json does."""
    database = f"sqlite:///{tmp_path}/gateway.db"
    store = open_store(database)
    store.migrate()
    elsewhere = load_or_create_document_key(tmp_path / "node-b" / "document-key.pem")
    try:
        register(store, elsewhere)
    finally:
        store.close()
    monkeypatch.setenv("GATEWAY_DOCUMENT_KEY", str(tmp_path / "node-a" / "document-key.pem"))
    load_or_create_document_key(tmp_path / "node-a" / "document-key.pem")
    signed = write(tmp_path / "doc.json", elsewhere.sign(document(), WHEN, GATEWAY))
    assert main(["documents", "verify", str(signed), "--database-url", database]) == 0
    unknown = load_or_create_document_key(tmp_path / "node-c" / "document-key.pem")
    forged = write(tmp_path / "forged.json", unknown.sign(document(), WHEN, GATEWAY))
    assert main(["documents", "verify", str(forged), "--database-url", database]) == 1


@pytest.mark.parametrize("content", [None, "{not json", "-----BEGIN NOTHING-----"])
def test_unreadable_input_exits_2(
    tmp_path: Path,
    signer: DocumentSigner,
    content: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    signed = write(tmp_path / "doc.json", signer.sign(document(), WHEN, GATEWAY))
    good_key = jwks(tmp_path, signer)
    assert main(["documents", "verify", str(bad), "--key", str(good_key)]) == 2
    assert main(["documents", "verify", str(signed), "--key", str(bad)]) == 2
    assert "gateway documents verify:" in capsys.readouterr().err
