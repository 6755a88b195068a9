"""The gateway's signature on the documents it builds: ``Bundle.signature``
(https://hl7.org/fhir/R4/bundle.html, the Signature datatype of
https://hl7.org/fhir/R4/datatypes.html#Signature) holding a JSON Web Signature
with a detached payload (RFC 7515 Appendix F), EdDSA over Ed25519 (RFC 8037),
so that a hospital can check that what it received is what the gateway sent.

What is signed is the document in FHIR's canonical JSON, method
``http://hl7.org/fhir/canonicalization/json#document``
(https://hl7.org/fhir/R4/json.html#canonical): the whole Bundle except its
``id`` and ``meta`` (so the document can be stored under another id on
another server) and, being where the signature goes, ``signature``. Narrative
is signed: what a clinician reads is part of what the gateway attests. R4
defines canonical JSON only as "no whitespace, properties in alphabetical
order"; its successors (R5 signatures.html, and HL7's Da Vinci CDex guide on
R4) make that precise as the JSON Canonicalization Scheme, RFC 8785, which is
what ``canonical_json`` implements, numbers included.

The signature says where to look: ``targetFormat`` names the canonicalization
as a MIME parameter, as FHIR (R5) and CDex do, and the JWS protected header,
which unlike ``Bundle.signature`` is itself signed, carries the signing time
(``sigT``) and the commitment (``srCms``) as ETSI JAdES (TS 119 182-1) names
them and FHIR recommends, and the canonicalization (``canon``, a private
header name). The public keys are served as a JWKS at
``/documents/jwks.json``; ``kid`` is the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

from gateway.keyfiles import load_or_create_ed25519

ALGORITHM = "EdDSA"
CANONICALIZATION = "http://hl7.org/fhir/canonicalization/json#document"
TARGET_FORMAT = f"application/fhir+json;canonicalization={CANONICALIZATION}"
SIG_FORMAT = "application/jose"
# Of the ASTM E1762 signature types (the R4 value set signature-type is the
# whole code system), "Source Signature" says what the gateway attests: it is
# the source of this document as transmitted, and the document has not
# changed since. "Verification Signature" (…1.5, CDex's choice for a system's
# signature) reads as a signer who verified that the content is correct, which
# a gateway assembling other organisations' records cannot claim.
SIGNATURE_TYPE = {
    "system": "urn:iso-astm:E1762-95:2013",
    "code": "1.2.840.10065.1.12.1.14",
    "display": "Source Signature",
}
_MAX_EXACT_INTEGER = 2**53


class BadSignature(ValueError):
    """A document whose signature is missing, malformed, by an unknown key
    or does not match it (the message says which)."""


@dataclass(frozen=True)
class Verified:
    """A signature that checks: the key that made it, the signing time it
    signs (``sigT``) and the signer ``Bundle.signature.who`` names."""

    kid: str
    when: str | None
    who: str | None


# -- Canonical JSON (RFC 8785) -------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """``value`` in the JSON Canonicalization Scheme (RFC 8785): object
    members sorted by their names' UTF-16 code units, no whitespace, strings
    escaped only where JSON must (quote, backslash, controls), UTF-8, and
    numbers as ECMAScript prints IEEE 754 doubles. An int beyond what a double
    holds exactly, NaN and the infinities have no such form: ValueError."""
    try:
        prepared = _prepared(value)
    except _Unusual:
        parts: list[str] = []
        _write(value, parts)
        try:
            return "".join(parts).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"a string holds a lone surrogate: {exc}") from None
    try:
        return orjson.dumps(prepared, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError: a lone surrogate
        raise ValueError(f"a string holds a lone surrogate: {exc}") from None


class _Unusual(Exception):
    """A value orjson would not write as RFC 8785 does."""


def _prepared(value: Any) -> Any:
    """``value`` made ready for orjson to write in canonical form, the same
    object where nothing needs changing (a document is mostly strings).

    orjson escapes strings exactly as RFC 8785 does (tested), and with
    OPT_SORT_KEYS sorts ASCII member names in UTF-16 order too; its numbers
    differ (1.0, not 1), so each float is written by ``jcs_number`` and
    spliced in. A non-ASCII member name, a tuple or a non-JSON value takes
    the slow path, which handles (or refuses) every case."""
    if isinstance(value, str) or value is None or value is True or value is False:
        return value
    if isinstance(value, dict):
        copied: dict[str, Any] | None = None
        for name, item in value.items():
            if not (isinstance(name, str) and name.isascii()):
                raise _Unusual
            ready = _prepared(item)
            if ready is not item:
                if copied is None:
                    copied = dict(value)
                copied[name] = ready
        return value if copied is None else copied
    if isinstance(value, list):
        listed: list[Any] | None = None
        for index, item in enumerate(value):
            ready = _prepared(item)
            if ready is not item:
                if listed is None:
                    listed = list(value)
                listed[index] = ready
        return value if listed is None else listed
    if isinstance(value, int) and abs(value) <= _MAX_EXACT_INTEGER:
        return value
    if isinstance(value, int | float):
        return orjson.Fragment(jcs_number(value))
    raise _Unusual


def _write(value: Any, parts: list[str]) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, int | float):
        parts.append(jcs_number(value))
    elif isinstance(value, Mapping):
        parts.append("{")
        for index, name in enumerate(sorted(value, key=_utf16)):
            if not isinstance(name, str):
                raise TypeError(f"a JSON object's member name must be a string, not {name!r}")
            if index:
                parts.append(",")
            parts.append(_string(name))
            parts.append(":")
            _write(value[name], parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _utf16(name: object) -> bytes:
    return name.encode("utf-16-be", "surrogatepass") if isinstance(name, str) else b""


def _string(text: str) -> str:
    # The standard library escapes exactly RFC 8785 §3.2.2.2's set when not
    # asked for ASCII: ", \, \b \t \n \f \r, other controls as lowercase \u00xx.
    return json.dumps(text, ensure_ascii=False)


def jcs_number(value: int | float) -> str:
    """A JSON number as RFC 8785 §3.2.2.3 writes it: ECMAScript's
    Number.prototype.toString of the IEEE 754 double (shortest digits that
    read back to the same double; plain notation from 1e-6 up to 1e21)."""
    if isinstance(value, int):
        if abs(value) <= _MAX_EXACT_INTEGER:
            return str(value)
        as_double = float(value) if abs(value) < 2**1024 else math.inf
        if not math.isfinite(as_double) or int(as_double) != value:
            raise ValueError(f"{value} is not exactly an IEEE 754 double, so has no JSON form")
        value = as_double
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    # repr gives the shortest round-tripping digits (the nearest when several
    # are as short), the digits ECMAScript asks for; only the layout differs.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)  # value = 0.<digits> x 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        head = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{head}e{'+' if n >= 1 else '-'}{abs(n - 1)}"
    return sign + text


def canonical_document(bundle: Mapping[str, Any]) -> bytes:
    """The bytes a document's signature covers: the Bundle, without its
    ``id``, ``meta`` and ``signature``, as RFC 8785 canonical JSON.

    The Bundle is taken through orjson first, so resources spliced in as
    pre-serialised fragments (``fhirjson.fragment``) are signed as the JSON
    they hold, exactly as a recipient parses them."""
    try:
        plain = orjson.loads(orjson.dumps(bundle))
    except TypeError as exc:  # orjson.JSONEncodeError: not JSON-serialisable
        raise ValueError(f"the document is not JSON: {exc}") from None
    if not isinstance(plain, dict) or plain.get("resourceType") != "Bundle":
        raise ValueError("only a Bundle is signed (canonicalization json#document)")
    for excluded in ("id", "meta", "signature"):
        plain.pop(excluded, None)
    return canonical_json(plain)


# -- Keys -------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(x: str) -> str:
    """RFC 7638: the SHA-256 of an Ed25519 JWK's required members (crv, kty,
    x), in canonical JSON, base64url."""
    members = canonical_json({"crv": "Ed25519", "kty": "OKP", "x": x})
    return _b64url(hashlib.sha256(members).digest())


def public_jwk(public: Ed25519PublicKey) -> dict[str, str]:
    """The JWK (RFC 8037) a verifier checks documents with."""
    x = _b64url(_raw(public))
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": thumbprint(x),
        "alg": ALGORITHM,
        "use": "sig",
    }


@dataclass(frozen=True)
class DocumentSigner:
    """The gateway's document-signing key."""

    key: Ed25519PrivateKey

    @cached_property
    def kid(self) -> str:
        return thumbprint(_b64url(_raw(self.key.public_key())))

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.key.public_key())

    def sign(self, bundle: dict[str, Any], when: str, who_reference: str) -> dict[str, Any]:
        """``bundle`` (a document) with ``Bundle.signature`` set: signed at
        ``when`` (a FHIR instant) by the Device ``who_reference`` names. The
        argument is not changed; resources in it are shared with the result."""
        if bundle.get("type") != "document":
            raise ValueError("only a document Bundle (type document) is signed")
        headers = {
            "kid": self.kid,
            "sigT": when,
            "srCms": [
                {
                    "commId": {
                        "id": f"urn:oid:{SIGNATURE_TYPE['code']}",
                        "desc": SIGNATURE_TYPE["display"],
                    }
                }
            ],
            "canon": CANONICALIZATION,
            "typ": None,  # pyjwt's default "JWT" would be wrong: this is no JWT
        }
        token = PyJWS().encode(
            canonical_document(bundle), self.key, algorithm=ALGORITHM, headers=headers
        )
        # Appendix F: signed over header.payload as usual, sent without the payload.
        protected, _, signature = token.split(".")
        detached = f"{protected}..{signature}"
        signed = {name: value for name, value in bundle.items() if name != "signature"}
        signed["signature"] = {
            "type": [dict(SIGNATURE_TYPE)],
            "when": when,
            "who": {"reference": who_reference},
            "targetFormat": TARGET_FORMAT,
            "sigFormat": SIG_FORMAT,
            "data": base64.b64encode(detached.encode("ascii")).decode("ascii"),
        }
        return signed


def load_or_create_document_key(path: Path) -> DocumentSigner:
    """The documents' signing key from ``path`` (PKCS#8 PEM), created there
    on first use, readable by its owner only."""
    return DocumentSigner(load_or_create_ed25519(path))


# -- Verification -----------------------------------------------------------


def _usable_keys(keys: Sequence[Mapping[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys among ``keys``, by their ``kid`` and by thumbprint.
    Private members are never read: only ``x``."""
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in keys:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
            continue
        x = jwk.get("x")
        try:
            public = Ed25519PublicKey.from_public_bytes(_b64url_decode(str(x)))
        except ValueError:
            continue
        found[thumbprint(_b64url(_raw(public)))] = public
        if isinstance(jwk.get("kid"), str):
            found[jwk["kid"]] = public
    return found


def _protected_header(segment: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64url_decode(segment))
    except ValueError:
        raise BadSignature("the JWS's protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise BadSignature("the JWS's protected header is not a JSON object")
    return header


def verify(bundle: Any, keys: Sequence[Mapping[str, Any]]) -> Verified:
    """Check a document's ``Bundle.signature`` with ``keys`` (public JWKs).
    Only EdDSA signatures by one of ``keys`` over the document as it is now
    pass; anything else raises ``BadSignature`` saying what is wrong."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadSignature("not a FHIR Bundle")
    signature = bundle.get("signature")
    if not isinstance(signature, dict) or not signature.get("data"):
        raise BadSignature("the document is not signed: it has no Bundle.signature.data")
    if signature.get("sigFormat") != SIG_FORMAT:
        raise BadSignature(
            f"Bundle.signature.sigFormat is {signature.get('sigFormat')!r}; "
            f"a JWS ({SIG_FORMAT}) is expected"
        )
    try:
        compact = base64.b64decode(str(signature["data"]), validate=True).decode("ascii")
    except ValueError:
        raise BadSignature("Bundle.signature.data is not base64 of a compact JWS") from None
    segments = compact.split(".")
    if len(segments) != 3:
        raise BadSignature("Bundle.signature.data is not a compact JWS (header..signature)")
    if segments[1]:
        raise BadSignature(
            "the JWS carries a payload; a detached one (RFC 7515 App. F) is expected"
        )
    header = _protected_header(segments[0])
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise BadSignature(f"the JWS is signed with alg {alg!r}; only {ALGORITHM} is accepted")
    if "crit" in header or header.get("b64", True) is not True:
        raise BadSignature("the JWS asks for header extensions (crit, b64) this verifier lacks")
    canon = header.get("canon", CANONICALIZATION)
    if canon != CANONICALIZATION:
        raise BadSignature(f"the JWS signs canonical form {canon!r}; only {CANONICALIZATION}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise BadSignature("the JWS does not name its key (no kid)")
    public = _usable_keys(keys).get(kid)
    if public is None:
        raise BadSignature(f"signed by key {kid}, which is not among the keys given")
    try:
        payload = canonical_document(bundle)
    except (TypeError, ValueError) as exc:
        raise BadSignature(f"the document has no canonical form: {exc}") from None
    token = f"{segments[0]}.{_b64url(payload)}.{segments[2]}"
    try:
        PyJWS().decode_complete(token, public, algorithms=[ALGORITHM])
    except InvalidSignatureError:
        raise BadSignature(
            "the signature does not match the document: it was changed after it was signed"
        ) from None
    except PyJWTError as exc:
        raise BadSignature(f"the JWS does not verify: {exc}") from None
    when = header.get("sigT")
    if when is not None and signature.get("when") != when:
        raise BadSignature(
            f"Bundle.signature.when ({signature.get('when')}) is not the signing time "
            f"the signature holds ({when})"
        )
    who = signature.get("who")
    reference = who.get("reference") if isinstance(who, dict) else None
    return Verified(kid=kid, when=when, who=reference if isinstance(reference, str) else None)
