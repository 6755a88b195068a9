"""The documents' signing key is published as a JWKS anyone may fetch, and a
document the running gateway signs verifies with what it publishes, whichever
node of the deployment signed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.documents import keys as published
from gateway.documents.signature import BadSignature, load_or_create_document_key, verify
from gateway.store import Store
from tests.conftest import make_client
from tests.unit.documents.test_signature import GATEWAY, WHEN, document


def test_the_jwks_is_public_cacheable_and_verifies_what_the_gateway_signs(
    store: Store, tmp_path: Path
) -> None:
    key = tmp_path / "document-key.pem"
    with make_client(store, token=None, document_key=str(key)) as api:
        answer = api.get("/documents/jwks.json")
        signed = api.app.state.document_signer.sign(document(), WHEN, GATEWAY)  # type: ignore[attr-defined]
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/jwk-set+json"
    assert answer.headers["cache-control"] == "public, max-age=300"
    keys = answer.json()["keys"]
    assert keys == [load_or_create_document_key(key).public_jwk()]
    assert set(keys[0]) == {"kty", "crv", "x", "kid", "alg", "use"}  # nothing private
    assert verify(signed, keys).kid == keys[0]["kid"]


def test_the_key_is_made_on_first_start_and_kept(store: Store, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "document-key.pem"
    served = []
    for _ in range(2):
        with make_client(store, token=None, document_key=str(key)) as api:
            served.append(api.get("/documents/jwks.json").json())
    assert key.stat().st_mode & 0o077 == 0
    assert served[0] == served[1]


def test_every_nodes_key_is_published_by_every_node(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two nodes on one database with key files of their own (one started
    without the other's file): a document either signs verifies with the
    JWKS either serves, and a key no node uses now stays published."""
    monkeypatch.setattr(published, "PUBLISHED_KEPT_S", 0.0)
    first, second = tmp_path / "a" / "document-key.pem", tmp_path / "b" / "document-key.pem"
    with make_client(store, token=None, document_key=str(first)) as node_a:
        alone = node_a.get("/documents/jwks.json").json()["keys"]
        with make_client(store, token=None, document_key=str(second)) as node_b:
            signed_by_b = node_b.app.state.document_signer.sign(document(), WHEN, GATEWAY)  # type: ignore[attr-defined]
            served_by_a = node_a.get("/documents/jwks.json").json()["keys"]
            served_by_b = node_b.get("/documents/jwks.json").json()["keys"]
        signed_by_a = node_a.app.state.document_signer.sign(document(), WHEN, GATEWAY)  # type: ignore[attr-defined]
    kid_a = load_or_create_document_key(first).kid
    kid_b = load_or_create_document_key(second).kid
    assert [key["kid"] for key in alone] == [kid_a]
    with pytest.raises(BadSignature):
        verify(signed_by_b, alone)  # what a node published before the other began
    assert {key["kid"] for key in served_by_a} == {kid_a, kid_b}
    assert served_by_a == served_by_b
    assert verify(signed_by_b, served_by_a).kid == kid_b
    assert verify(signed_by_a, served_by_b).kid == kid_a
    assert all(set(key) == {"kty", "crv", "x", "kid", "alg", "use"} for key in served_by_a)
    # Node B gone, its documents still verify with what node A serves.
    with make_client(store, token=None, document_key=str(first)) as node_a:
        later = node_a.get("/documents/jwks.json").json()["keys"]
    assert verify(signed_by_b, later).kid == kid_b


def test_the_keys_published_are_read_at_most_every_few_seconds(
    store: Store, tmp_path: Path
) -> None:
    """The public endpoint does not reach the database on every fetch: a
    key another node starts with appears within ``PUBLISHED_KEPT_S``."""
    with make_client(store, token=None, document_key=str(tmp_path / "a.pem")) as node_a:
        before = node_a.get("/documents/jwks.json").json()["keys"]
        published.register(store, load_or_create_document_key(tmp_path / "b.pem"))
        assert node_a.get("/documents/jwks.json").json()["keys"] == before
        assert published.PUBLISHED_KEPT_S <= 5.0
    assert len(published.published(store)) == 2
