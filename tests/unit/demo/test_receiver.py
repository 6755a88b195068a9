"""The demo's receiver checks each notification's signature as any
subscriber would, with the gateway's public keys alone, takes what is
signed and refuses the rest, a line each in its file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway import fhirjson
from gateway.delivery.sending import SIGNATURE_HEADER, signature_of
from gateway.demo.receiver import BadSignature, Receiver, verify
from gateway.documents.signature import DocumentSigner

SIGNER = DocumentSigner(Ed25519PrivateKey.generate())

BUNDLE = {
    "resourceType": "Bundle",
    "type": "history",
    "entry": [
        {
            "resource": {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "topic",
                        "valueCanonical": "urn:london-care-gateway:SubscriptionTopic:admission",
                    },
                    {"name": "type", "valueCode": "event-notification"},
                    {
                        "name": "notification-event",
                        "part": [
                            {"name": "event-number", "valueString": "7"},
                            {
                                "name": "focus",
                                "valueReference": {"reference": "Encounter/e/_history/1"},
                            },
                        ],
                    },
                ],
            }
        }
    ],
}
BODY = fhirjson.dumps(BUNDLE)


def _keys(kid: str) -> Ed25519PublicKey | None:
    return SIGNER.key.public_key() if kid == SIGNER.kid else None


def test_a_signature_checks_over_the_exact_body() -> None:
    assert verify(signature_of(SIGNER, BODY), BODY, _keys) == SIGNER.kid
    with pytest.raises(BadSignature, match="does not match"):
        verify(signature_of(SIGNER, BODY), BODY + b" ", _keys)
    other = DocumentSigner(Ed25519PrivateKey.generate())
    with pytest.raises(BadSignature, match="does not serve"):
        verify(signature_of(other, BODY), BODY, _keys)
    protected, _, signed = signature_of(SIGNER, BODY).split(".")
    with pytest.raises(BadSignature, match="detached"):
        verify(f"{protected}.eA.{signed}", BODY, _keys)
    with pytest.raises(BadSignature, match="detached"):
        verify("", BODY, _keys)


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Receiver]:
    said: list[str] = []
    receiver = Receiver(tmp_path / "received.log", "http://unused", said.append, keys=_keys)
    receiver.start()
    yield receiver
    receiver.stop()


def test_the_receiver_takes_what_is_signed_and_refuses_the_rest(listening: Receiver) -> None:
    url = listening.url + "/demo-care-home-v9c01"
    signed = {SIGNATURE_HEADER: signature_of(SIGNER, BODY)}
    assert httpx.post(url, content=BODY, headers=signed).status_code == 200
    assert httpx.post(url, content=BODY + b" ", headers=signed).status_code == 401
    assert httpx.post(url, content=b"{}", headers=signed).status_code == 400
    (taken,) = listening.received()
    assert (taken.path, taken.kind, taken.topic, taken.numbers) == (
        "/demo-care-home-v9c01", "event-notification", "admission", ("7",)
    )  # fmt: skip
    ok, bad, unreadable = listening.log_file.read_text().splitlines()
    assert ok.endswith(
        "/demo-care-home-v9c01  event-notification  admission  "
        "event 7: Encounter/e/_history/1  signature ok"
    )
    assert "signature BAD (it does not match the body): refused" in bad
    assert unreadable.endswith("not a notification Bundle: refused")
