"""The documents' signing key is published as a JWKS anyone may fetch, and a
document the running gateway signs verifies with what it publishes."""

from __future__ import annotations

from pathlib import Path

from gateway.documents.signature import load_or_create_document_key, verify
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
    assert answer.headers["cache-control"] == "public, max-age=3600"
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
