"""Public keys as JWKs: reading the ones clients register, making key pairs.

Client assertions are signed RS384 or ES384 and nothing else
(https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html):
an RSA key of at least 2048 bits, or an EC key on P-384. Each registered key
carries its ``kid`` (the RFC 7638 thumbprint unless the JWKS names one) and
the ``alg`` it may sign with.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

RS384 = "RS384"
ES384 = "ES384"
ALGORITHMS = (RS384, ES384)
_MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeyProblem(ValueError):
    """A key that is not an RS384 or ES384 public key (named for what it is)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: the SHA-256 of the key's required members, in order."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _checked(key: object) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise KeyProblem(f"an RSA key of {key.key_size} bits; at least {_MIN_RSA_BITS} needed")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP384R1):
            raise KeyProblem(f"an EC key on {key.curve.name}; ES384 needs P-384 (secp384r1)")
        return key
    raise KeyProblem(
        f"a {type(key).__name__}; only RSA (RS384) and EC P-384 (ES384) keys are accepted"
    )


def to_jwk(key: PublicKey, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of ``key``, with its ``alg``, ``use`` and ``kid``."""
    key = _checked(key)
    if isinstance(key, rsa.RSAPublicKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)
        jwk["alg"] = RS384
    else:
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
        jwk["alg"] = ES384
    jwk["use"] = "sig"
    jwk["kid"] = kid or thumbprint(jwk)
    return jwk


def from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """The key a registered JWK describes."""
    if jwk.get("kty") == "RSA":
        return _checked(RSAAlgorithm.from_jwk(jwk))
    if jwk.get("kty") == "EC":
        return _checked(ECAlgorithm.from_jwk(jwk))
    raise KeyProblem(f"a JWK of kty {jwk.get('kty')!r}; RSA or EC expected")


def read_public_keys(text: str) -> list[dict[str, Any]]:
    """The public keys in a PEM public key, a JWK or a JWKS, as JWKs.
    Private parts of a JWK are never kept."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        if "PRIVATE KEY" in stripped:
            raise KeyProblem("a private key; register the public key (or use --generate-key)")
        try:
            loaded = serialization.load_pem_public_key(stripped.encode())
        except ValueError as exc:
            raise KeyProblem(f"not a PEM public key: {exc}") from exc
        return [to_jwk(_checked(loaded))]
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise KeyProblem("neither a PEM public key nor a JWK or JWKS (JSON)") from exc
    found = (
        document.get("keys") if isinstance(document, dict) and "keys" in document else [document]
    )
    if not isinstance(found, list) or not found:
        raise KeyProblem("a JWKS with no keys")
    keys = []
    for jwk in found:
        if not isinstance(jwk, dict):
            raise KeyProblem("a JWKS entry that is not a JSON object")
        keys.append(to_jwk(from_jwk(jwk), jwk.get("kid")))
    return keys


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new ES384 key pair (EC P-384)."""
    return ec.generate_private_key(ec.SECP384R1())


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyProblem(f"a {type(key).__name__}; RSA or EC expected")
    _checked(key.public_key())
    return key


def algorithm_for(key: PrivateKey) -> str:
    return ES384 if isinstance(key, ec.EllipticCurvePrivateKey) else RS384
