"""Documents signed by the gateway: a JWS with detached payload over the
canonical document, that fails on any change and on any other key."""

from __future__ import annotations

import base64
import copy
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import fhirjson
from gateway.documents.signature import (
    CANONICALIZATION,
    BadSignature,
    DocumentSigner,
    canonical_document,
    canonical_json,
    jcs_number,
    load_or_create_document_key,
    public_jwk,
    thumbprint,
    verify,
)

WHEN = "2026-03-04T05:06:07.000000Z"
GATEWAY = "Device/london-care-gateway"


def document() -> dict[str, Any]:
    """A small Red Bag: a Composition, the resident, a medicine with a dose."""
    return {
        "resourceType": "Bundle",
        "id": "rb-1",
        "meta": {"lastUpdated": "2026-03-04T05:06:07.000000Z"},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c8c7f43"},
        "type": "document",
        "timestamp": "2026-03-04T05:06:07.000000Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {
                    "resourceType": "Composition",
                    "status": "final",
                    "title": "Red Bag",
                    "section": [
                        {
                            "title": "Medicines",
                            "text": {
                                "status": "generated",
                                "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                "Paracetamol 1 g four times daily</div>",
                            },
                            "entry": [{"reference": "urn:uuid:3"}],
                        }
                    ],
                },
            },
            {
                "fullUrl": "urn:uuid:2",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Ó Briain", "given": ["Siobhán"]}],
                },
            },
            {
                "fullUrl": "urn:uuid:3",
                "resource": {
                    "resourceType": "MedicationStatement",
                    "status": "active",
                    "dosage": [
                        {
                            "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
                            "doseAndRate": [{"doseQuantity": {"value": 1.0, "unit": "g"}}],
                        }
                    ],
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def signer() -> DocumentSigner:
    return DocumentSigner(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def signed(signer: DocumentSigner) -> dict[str, Any]:
    return signer.sign(document(), WHEN, GATEWAY)


def jws_of(bundle: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    compact = base64.b64decode(bundle["signature"]["data"]).decode()
    protected, payload, signature = compact.split(".")
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    return header, payload, signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_data(bundle: dict[str, Any], compact: str) -> dict[str, Any]:
    forged = copy.deepcopy(bundle)
    forged["signature"]["data"] = base64.b64encode(compact.encode()).decode()
    return forged


# -- Signing and verifying -----------------------------------------------------


def test_a_signed_document_verifies_with_the_published_key(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    """The round trip, through JSON text as a hospital receives it."""
    received = json.loads(fhirjson.dumps(signed))
    assert verify(received, [signer.public_jwk()]) == verify(signed, [signer.public_jwk()])
    checked = verify(received, [signer.public_jwk()])
    assert (checked.kid, checked.when, checked.who) == (signer.kid, WHEN, GATEWAY)


def test_the_signature_element_is_an_r4_signature(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    element = signed["signature"]
    assert element["type"] == [
        {
            "system": "urn:iso-astm:E1762-95:2013",
            "code": "1.2.840.10065.1.12.1.14",
            "display": "Source Signature",
        }
    ]
    assert element["when"] == WHEN
    assert element["who"] == {"reference": GATEWAY}
    assert element["sigFormat"] == "application/jose"
    assert element["targetFormat"] == f"application/fhir+json;canonicalization={CANONICALIZATION}"
    assert list(signed)[-1] == "signature"  # Bundle.signature is the Bundle's last element


def test_the_jws_is_detached_eddsa_with_the_signing_time_and_canonicalization(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    header, payload, signature = jws_of(signed)
    assert payload == ""  # RFC 7515 Appendix F
    assert header["alg"] == "EdDSA" and header["kid"] == signer.kid
    assert header["sigT"] == WHEN and header["canon"] == CANONICALIZATION
    assert header["srCms"][0]["commId"]["id"] == "urn:oid:1.2.840.10065.1.12.1.14"
    assert "typ" not in header and "b64" not in header and "crit" not in header
    # Any JWS library checks it once the canonical document is put back in.
    protected = base64.b64decode(signed["signature"]["data"]).decode().split(".")[0]
    token = f"{protected}.{b64url(canonical_document(signed))}.{signature}"
    assert jwt.api_jws.PyJWS().decode_complete(
        token, signer.key.public_key(), algorithms=["EdDSA"]
    )["payload"] == canonical_document(document())


def test_signing_leaves_the_document_given_untouched(signer: DocumentSigner) -> None:
    original = document()
    before = copy.deepcopy(original)
    signer.sign(original, WHEN, GATEWAY)
    assert original == before


def test_signing_again_replaces_the_signature(signer: DocumentSigner) -> None:
    twice = signer.sign(signer.sign(document(), WHEN, GATEWAY), "2026-03-05T00:00:00Z", GATEWAY)
    assert verify(twice, [signer.public_jwk()]).when == "2026-03-05T00:00:00Z"


def test_only_documents_are_signed(signer: DocumentSigner) -> None:
    with pytest.raises(ValueError, match="document"):
        signer.sign({**document(), "type": "collection"}, WHEN, GATEWAY)


def test_stored_fragments_are_signed_as_the_json_they_hold(signer: DocumentSigner) -> None:
    """The builder splices stored resources in pre-serialised; the signature
    covers them as the recipient parses them."""
    spliced = document()
    patient = spliced["entry"][1]
    patient["resource"] = fhirjson.fragment(fhirjson.dumps(patient["resource"]))
    signed = signer.sign(spliced, WHEN, GATEWAY)
    assert verify(json.loads(fhirjson.dumps(signed)), [signer.public_jwk()]).kid == signer.kid


def _dose(bundle: dict[str, Any]) -> None:
    bundle["entry"][2]["resource"]["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 10.0


def _narrative(bundle: dict[str, Any]) -> None:
    section = bundle["entry"][0]["resource"]["section"][0]
    section["text"]["div"] = section["text"]["div"].replace("1 g", "10 g")


def _added(bundle: dict[str, Any]) -> None:
    bundle["entry"].append({"fullUrl": "urn:uuid:4", "resource": {"resourceType": "Flag"}})


def _removed(bundle: dict[str, Any]) -> None:
    del bundle["entry"][2]


def _reordered(bundle: dict[str, Any]) -> None:
    bundle["entry"][1], bundle["entry"][2] = bundle["entry"][2], bundle["entry"][1]


def _name(bundle: dict[str, Any]) -> None:
    bundle["entry"][1]["resource"]["name"][0]["given"] = ["Siobhan"]


def _member_added(bundle: dict[str, Any]) -> None:
    bundle["entry"][1]["resource"]["deceasedBoolean"] = True


def _type(bundle: dict[str, Any]) -> None:
    bundle["type"] = "collection"


def _int_for_float(bundle: dict[str, Any]) -> None:
    repeat = bundle["entry"][2]["resource"]["dosage"][0]["timing"]["repeat"]
    repeat["frequency"] = "4"


@pytest.mark.parametrize(
    "change",
    [_dose, _narrative, _added, _removed, _reordered, _name, _member_added, _type, _int_for_float],
)
def test_any_change_to_the_document_fails(
    signer: DocumentSigner, signed: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> None:
    changed = copy.deepcopy(signed)
    change(changed)
    with pytest.raises(BadSignature, match="changed after it was signed"):
        verify(changed, [signer.public_jwk()])


def test_id_and_meta_may_change_as_the_document_moves_between_servers(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    """Canonicalization json#document: Bundle.id and Bundle.meta are not signed."""
    moved = copy.deepcopy(signed)
    moved["id"] = "stored-elsewhere"
    moved["meta"] = {"versionId": "3", "lastUpdated": "2026-04-01T00:00:00Z"}
    assert verify(moved, [signer.public_jwk()]).kid == signer.kid
    # ...but not the id of a resource inside it.
    inner = copy.deepcopy(signed)
    inner["entry"][1]["resource"]["id"] = "someone-else"
    with pytest.raises(BadSignature):
        verify(inner, [signer.public_jwk()])


def test_whitespace_and_member_order_on_the_wire_do_not_matter(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    pretty = json.dumps(dict(reversed(list(signed.items()))), indent=4, ensure_ascii=True)
    assert verify(json.loads(pretty), [signer.public_jwk()]).kid == signer.kid


def test_an_unsigned_document_fails(signer: DocumentSigner, signed: dict[str, Any]) -> None:
    bare = {name: value for name, value in signed.items() if name != "signature"}
    with pytest.raises(BadSignature, match="not signed"):
        verify(bare, [signer.public_jwk()])
    with pytest.raises(BadSignature, match="not a FHIR Bundle"):
        verify(["not", "a", "bundle"], [signer.public_jwk()])


def test_another_key_fails(signed: dict[str, Any]) -> None:
    other = DocumentSigner(Ed25519PrivateKey.generate())
    with pytest.raises(BadSignature, match="not among the keys given"):
        verify(signed, [other.public_jwk()])
    # Even when the other key claims the signer's kid.
    impostor = {**other.public_jwk(), "kid": jws_of(signed)[0]["kid"]}
    with pytest.raises(BadSignature, match="changed after it was signed"):
        verify(signed, [impostor])


def test_a_document_re_signed_by_someone_else_fails(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    changed = copy.deepcopy(signed)
    _dose(changed)
    forger = DocumentSigner(Ed25519PrivateKey.generate())
    with pytest.raises(BadSignature, match="not among the keys given"):
        verify(forger.sign(changed, WHEN, GATEWAY), [signer.public_jwk()])


def test_unsigned_alg_none_is_refused(signer: DocumentSigner, signed: dict[str, Any]) -> None:
    header = {"alg": "none", "kid": signer.kid}
    forged = with_data(signed, f"{b64url(json.dumps(header).encode())}..")
    with pytest.raises(BadSignature, match="alg 'none'"):
        verify(forged, [signer.public_jwk()])


def test_hs256_with_the_public_key_as_secret_is_refused(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    """The classic confusion: an HMAC keyed with the published key bytes."""
    import hashlib
    import hmac

    x = signer.public_jwk()["x"].encode()
    protected = b64url(json.dumps({"alg": "HS256", "kid": signer.kid}).encode())
    signing_input = f"{protected}.{b64url(canonical_document(signed))}".encode()
    mac = b64url(hmac.new(x, signing_input, hashlib.sha256).digest())
    with pytest.raises(BadSignature, match="alg 'HS256'"):
        verify(with_data(signed, f"{protected}..{mac}"), [signer.public_jwk()])


def test_malformed_signatures_say_what_is_wrong(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    header, _, signature = jws_of(signed)
    protected = base64.b64decode(signed["signature"]["data"]).decode().split(".")[0]
    keys = [signer.public_jwk()]
    cases = {
        "not base64": {**signed, "signature": {**signed["signature"], "data": "%%%"}},
        "not a compact JWS": with_data(signed, "just-one-part"),
        "carries a payload": with_data(signed, f"{protected}.e30.{signature}"),
        "no kid": with_data(
            signed, f"{b64url(json.dumps({'alg': 'EdDSA'}).encode())}..{signature}"
        ),
        "header extensions": with_data(
            signed,
            f"{b64url(json.dumps({**header, 'b64': False, 'crit': ['b64']}).encode())}"
            f"..{signature}",
        ),
        "canonical form": with_data(
            signed,
            f"{b64url(json.dumps({**header, 'canon': 'urn:other'}).encode())}..{signature}",
        ),
        "sigFormat": {**signed, "signature": {**signed["signature"], "sigFormat": "image/png"}},
        "signing time": {**signed, "signature": {**signed["signature"], "when": "2030-01-01"}},
    }
    for problem, bundle in cases.items():
        with pytest.raises(BadSignature, match=problem):
            verify(bundle, keys)


def test_keys_are_found_by_kid_or_thumbprint_and_only_ed25519_counts(
    signer: DocumentSigner, signed: dict[str, Any]
) -> None:
    jwk = signer.public_jwk()
    bare = {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}  # no kid: its thumbprint
    rsa_like = {"kty": "RSA", "kid": signer.kid, "n": "AQAB", "e": "AQAB"}
    assert verify(signed, [rsa_like, bare]).kid == signer.kid
    with pytest.raises(BadSignature, match="not among"):
        verify(signed, [{**jwk, "alg": "ES256"}])


# -- The key -------------------------------------------------------------------


def test_the_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "document-key.pem"
    first = load_or_create_document_key(path)
    assert os.stat(path).st_mode & 0o077 == 0
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    again = load_or_create_document_key(path)
    assert again.public_jwk() == first.public_jwk()
    assert [p.name for p in path.parent.iterdir()] == ["document-key.pem"]


def test_the_public_jwk_is_an_rfc_8037_key_with_its_rfc_7638_thumbprint(
    signer: DocumentSigner,
) -> None:
    jwk = signer.public_jwk()
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk["kid"] == signer.kid == thumbprint(jwk["x"])
    assert "d" not in jwk
    assert public_jwk(signer.key.public_key()) == jwk


def test_the_thumbprint_matches_rfc_8037_appendix_a3() -> None:
    """RFC 8037 A.3: the thumbprint of the RFC's Ed25519 example key."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# -- Canonical JSON (RFC 8785) ---------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "expected"),
    [  # RFC 8785 Appendix B
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_numbers_are_written_as_ecmascript_writes_doubles(bits: str, expected: str) -> None:
    assert jcs_number(struct.unpack(">d", bytes.fromhex(bits))[0]) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (0.1, "0.1"),
        (1e-7, "1e-7"),
        (123.456, "123.456"),
        (-2.5, "-2.5"),
        (0, "0"),
        (72, "72"),
        (-(2**53), "-9007199254740992"),
        (2**60, "1152921504606847000"),  # a double; ECMAScript pads its shortest digits
        (10**21, "1e+21"),
    ],
)
def test_ints_and_floats_alike(value: float, expected: str) -> None:
    assert jcs_number(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 2**53 + 1, 10**400])
def test_numbers_without_a_json_form_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        jcs_number(value)


def test_the_rfc_8785_example_object() -> None:
    """RFC 8785 §3.2.2's example: numbers, escapes, literals, member order."""
    parsed = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        '"literals": [null, true, false]}'
    )
    assert (
        canonical_json(parsed)
        == (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        ).encode()
    )


def test_members_are_sorted_by_utf16_code_units() -> None:
    """RFC 8785 §3.2.3's example: an emoji (a surrogate pair) sorts before
    U+FB33, unlike in code point order."""
    names = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json({name: 0 for name in names}).decode()
    assert list(json.loads(text)) == [
        "\r",
        "1",
        "\u0080",
        "\u00f6",
        "\u20ac",
        "\U0001f600",
        "\ufb33",
    ]
    assert text.startswith('{"\\r":0,"1":0,"\u0080":0')  # only controls are escaped


def test_text_is_utf8_unescaped_and_without_whitespace() -> None:
    value = {"b": ["Siobhán", "<div>é</div>", "tab\there"], "a": {"z": None, "y": 1.50}}
    assert canonical_json(value) == (
        '{"a":{"y":1.5,"z":null},"b":["Siobhán","<div>é</div>","tab\\there"]}'.encode()
    )
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json("\ud800")
    with pytest.raises(TypeError):
        canonical_json({"when": object()})


def test_the_fast_path_writes_what_the_reference_implementation_writes() -> None:
    """orjson does the writing when it can; what it writes must be what the
    member-by-member RFC 8785 writer writes, on real records and on the
    awkward values (controls, non-BMP text, floats of every layout)."""
    from gateway.documents import signature

    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    records = json.loads((fixtures / "carehome" / "winifred-maddox.expected.json").read_text())
    awkward = {
        "text": 'tab\t nl\n \u0001 \u001f \u007f \u2028 é 😀 "q" \\',
        "numbers": [0, -0.0, 1.0, 37.5, 1e21, 1e-7, 123456789.125, 2**53, -(2**53), 5e-324],
        "nested": [{"b": 1, "a": [True, False, None, {"z": 0.1}]}],
    }
    for value in (records, awkward):
        parts: list[str] = []
        signature._write(value, parts)
        assert signature.canonical_json(value) == "".join(parts).encode("utf-8")
