"""Tokens under generated input: forged and mutated access tokens at
``/fhir`` and client assertions at ``/auth/token``.

An access token is changed the ways an attacker would: its claims altered
and signed again with another key, with HMAC or with none; its header
altered; its text mutated. A client assertion is made with claims and a
header of every wrong type, signed with the client's own key (so that the
claims are read past the signature) or not, and the token request's form
fields are varied too.

The properties: nothing but the token as issued opens the API (every other
is a 401 OperationOutcome), the token endpoint answers a 4xx OAuth error
for everything it does not grant, and neither ever answers a 5xx.
"""

from __future__ import annotations

import base64
import json
import string
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.clients import ClientRegistry, new_registration
from gateway.auth.keys import to_jwk
from gateway.auth.tokens import signing_key
from gateway.store import Store
from tests.conftest import access_token
from tests.fuzz.conftest import examples, fuzz_client
from tests.fuzz.fhir import BIG_NUMBERS, ODD_TEXT
from tests.fuzz.test_api import answered

TOKEN_URL = "http://testserver/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Claim and header values of every JSON type, and the edges of each.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    BIG_NUMBERS,
    st.sampled_from([float("1e308"), -1, 0, 1.5]),
    ODD_TEXT,
    st.text(max_size=10),
    st.just([]),
    st.just(["system/*.cruds"]),
    st.just({"a": 1}),
    st.just("x" * 10_000),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Any) -> str:
    return _b64(json.dumps(value).encode())


def sign(header: dict[str, Any], claims: Any, key: Any, alg: str) -> str:
    """A compact JWS of any header and claims (PyJWT's own encoder refuses
    some of what an attacker sends), signed as ``alg`` says with ``key``."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    if alg == "none":
        return signing_input + "."
    signature = jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), key)
    return f"{signing_input}.{_b64(signature)}"


_PRINTABLE = string.ascii_letters + string.digits + "-_.=+/ "


@st.composite
def _text_mutation(draw: st.DrawFn, token: str) -> str:
    """``token`` with characters changed, cut or added."""
    kind = draw(st.sampled_from(["replace", "cut", "insert", "dots", "segment"]))
    at = draw(st.integers(0, len(token)))
    if kind == "replace":
        return token[:at] + draw(st.text(_PRINTABLE, min_size=1, max_size=4)) + token[at + 1 :]
    if kind == "cut":
        return token[:at]
    if kind == "insert":
        return token[:at] + draw(st.text(_PRINTABLE, min_size=1, max_size=8)) + token[at:]
    if kind == "dots":
        return token.replace(".", draw(st.sampled_from(["..", "", ". ", ".=."])), 1)
    parts = token.split(".")
    index = draw(st.integers(0, len(parts) - 1))
    parts[index] = draw(
        st.sampled_from(["", "e30", "W10", "bnVsbA", "!!!!", _segment("x" * 3000), "A" * 5])
    )
    return ".".join(parts)


def _decoded_parts(token: str) -> list[bytes] | None:
    try:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    except ValueError:
        return None


def test_nothing_but_the_token_as_issued_opens_the_api(store: Store) -> None:
    good = access_token(store)
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    attacker = ec.generate_private_key(ec.SECP256R1())
    own_key = signing_key(store)
    with fuzz_client(store, token=None) as client:

        @examples(150, store)
        @given(
            st.sampled_from(["attacker", "hmac", "none", "splice", "text", "own key"]),
            st.dictionaries(
                st.sampled_from([*claims, "x", "crit"]), ODD_VALUES, min_size=1, max_size=3
            ),
            st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku"]), ODD_VALUES),
            st.data(),
        )
        def present(how: str, changed: dict[str, Any], head: dict[str, Any], data: Any) -> None:
            forged = {**claims, **changed}
            if how == "attacker":
                token = sign({**header, **head, "alg": "ES256"}, forged, attacker, "ES256")
            elif how == "hmac":
                token = sign({**header, "alg": "HS256"}, forged, b"secret" * 8, "HS256")
            elif how == "none":
                token = sign({**header, **head, "alg": "none"}, forged, None, "none")
            elif how == "splice":  # altered claims under the genuine signature
                head_part, _, signature = good.split(".")
                token = f"{head_part}.{_segment(forged)}.{signature}"
            elif how == "own key":  # claims of wrong types, signed as the gateway signs
                token = sign(header, forged, own_key, "ES256")
            else:
                token = data.draw(_text_mutation(good))
            response = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
            answered(response, f"bearer {how}")
            if how != "own key" and _decoded_parts(token) != _decoded_parts(good):
                assert response.status_code in (401, 431), (token, response.text)

        present()
        # And the token as issued still does.
        assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {good}"}).is_success


def _register(store: Store) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = to_jwk(key.public_key())
    ClientRegistry(store).save(
        new_registration(
            "fuzz-system",
            org_ods="RKE",
            org_name="Fuzz Trust",
            kind="hospital",
            scopes="system/*.rs",
            keys=[jwk],
        )
    )
    return key, str(jwk["kid"])


def test_the_token_endpoint_answers_an_oauth_error_or_a_token(store: Store) -> None:
    key, kid = _register(store)
    with fuzz_client(store, token=None) as client:

        @examples(150, store)
        @given(
            st.sampled_from(["own key", "own key", "other key", "none", "text"]),
            st.dictionaries(
                st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "x"]),
                ODD_VALUES,
                max_size=3,
            ),
            st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit"]), ODD_VALUES, max_size=2),
            st.dictionaries(
                st.sampled_from(
                    ["grant_type", "scope", "purpose_of_use", "break_glass_reason", "x"]
                ),
                st.one_of(ODD_TEXT, st.text(max_size=20), st.sampled_from(["ETREAT", "TREAT"])),
                max_size=2,
            ),
            st.data(),
        )
        def ask(
            how: str,
            changed: dict[str, Any],
            head: dict[str, Any],
            fields: dict[str, str],
            data: Any,
        ) -> None:
            now = int(time.time())
            claims = {
                "iss": "fuzz-system",
                "sub": "fuzz-system",
                "aud": TOKEN_URL,
                "exp": now + 120,
                "iat": now,
                "jti": str(uuid.uuid4()),
                **changed,
            }
            header = {"alg": "ES384", "kid": kid, "typ": "JWT", **head}
            if how == "own key":
                assertion = sign(header, claims, key, "ES384")
            elif how == "other key":
                other = ec.generate_private_key(ec.SECP384R1())
                assertion = sign(header, claims, other, "ES384")
            elif how == "none":
                assertion = sign({**header, "alg": "none"}, claims, None, "none")
            else:
                good = sign(header, claims, key, "ES384")
                assertion = data.draw(_text_mutation(good))
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
                "scope": "system/*.rs",
                **fields,
            }
            response = client.post(
                "/auth/token",
                content=urlencode(form, errors="surrogatepass"),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            status = response.status_code
            assert status < 500, (form, status, response.text[:2000])
            body = response.json()
            if status >= 400:
                assert (
                    isinstance(body.get("error"), str)
                    or body.get("resourceType") == "OperationOutcome"
                ), body
            else:
                assert body["token_type"] == "bearer"

        ask()
