"""SMART Backend Services: the token endpoint, bearer tokens and scopes.

Assertions are built here with PyJWT and throwaway keys, as any client
library would build them; nothing in the gateway signs them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from gateway.auth.clients import ClientRegistry, new_registration
from gateway.auth.keys import to_jwk
from gateway.auth.tokens import Purpose, TokenService
from gateway.store import Store
from tests.conftest import BASE_URL, access_token, make_client

TOKEN_URL = BASE_URL.removesuffix("/fhir") + "/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Client:
    """A registered client and its private key."""

    def __init__(self, store: Store, client_id: str, kind: str, scopes: str, rsa_key: bool) -> None:
        self.client_id = client_id
        self.key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if rsa_key
            else ec.generate_private_key(ec.SECP384R1())
        )
        self.alg = "RS384" if rsa_key else "ES384"
        self.jwk = to_jwk(self.key.public_key())
        ClientRegistry(store).save(
            new_registration(
                client_id,
                org_ods="RKE",
                org_name="Whittington Health",
                kind=kind,
                scopes=scopes,
                keys=[self.jwk],
            )
        )

    def assertion(self, **changes: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": changes.pop("kid", self.jwk["kid"])}
        key = changes.pop("key", self.key)
        alg = changes.pop("alg", self.alg)
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, key, algorithm=alg, headers=headers)


def form(assertion: str, **fields: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "system/*.rs",
        **fields,
    }


@pytest.fixture
def api(store: Store) -> Iterator[TestClient]:
    with make_client(store, token=None) as test_client:
        yield test_client


def ask(api: TestClient, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = api.post("/auth/token", data=data)
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


# -- discovery and the token endpoint ---------------------------------------------


def test_smart_configuration_describes_backend_services(api: TestClient) -> None:
    config = api.get("/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    security = api.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert security["extension"][0]["extension"][0]["valueUri"] == TOKEN_URL


@pytest.mark.parametrize("rsa_key", [True, False], ids=["RS384", "ES384"])
def test_a_signed_assertion_gets_a_token_that_reads(
    api: TestClient, store: Store, rsa_key: bool
) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/*.cruds", rsa_key)
    status, body = ask(api, form(client.assertion()))
    assert status == 200, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/*.rs"
    assert body["purpose_of_use"] == "TREAT"
    answer = api.get("/fhir/Patient", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["org"], claims["org_kind"], claims["sub"]) == ("RKE", "gp-practice", "gp-system")


def _hs256_with_public_key(client: Client) -> str:
    """The algorithm-confusion attack: the public key used as an HMAC secret."""
    public_pem = client.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": client.jwk["kid"], "typ": "JWT"}
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 60,
        "jti": str(uuid.uuid4()),
    }
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _unsigned(client: Client) -> str:
    return jwt.encode(
        {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 60,
            "jti": str(uuid.uuid4()),
        },
        None,
        algorithm="none",
        headers={"kid": client.jwk["kid"]},
    )


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda c: _unsigned(c), id="alg-none"),
        pytest.param(_hs256_with_public_key, id="public-key-as-hmac-secret"),
        pytest.param(
            lambda c: c.assertion(alg="RS256", key=rsa.generate_private_key(65537, 2048)),
            id="other-algorithm",
        ),
        pytest.param(
            lambda c: c.assertion(key=ec.generate_private_key(ec.SECP384R1())), id="wrong-key"
        ),
        pytest.param(lambda c: c.assertion(kid="unknown"), id="unknown-kid"),
        pytest.param(lambda c: c.assertion(sub="someone-else"), id="sub-not-iss"),
        pytest.param(lambda c: c.assertion(iss="nobody", sub="nobody"), id="unknown-client"),
        pytest.param(lambda c: c.assertion(aud="https://elsewhere/token"), id="wrong-aud"),
        pytest.param(lambda c: c.assertion(exp=int(time.time()) + 600), id="exp-too-far"),
        pytest.param(lambda c: c.assertion(exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda c: c.assertion(jti=None), id="no-jti"),
        pytest.param(lambda c: "not.a.jwt", id="garbage"),
    ],
)
def test_bad_assertions_are_invalid_client(api: TestClient, store: Store, forge: Any) -> None:
    client = Client(store, "ambulance-system", "ambulance", "system/*.rs", rsa_key=False)
    status, body = ask(api, form(forge(client)))
    assert status == 401, body
    assert body["error"] == "invalid_client"
    assert body["error_description"]


@pytest.mark.parametrize("issuer", ["\ud800", "a\x00b", "x" * 300, "caf\u00e9"])
def test_an_assertion_from_no_possible_client_id_is_invalid_client(
    api: TestClient, store: Store, issuer: str
) -> None:
    """Fuzzing found it: an iss with a lone surrogate (JSON may escape one)
    reached the database as a parameter, and the audit record, and was a 500
    before any signature was checked. Now it is a client that is not there."""
    client = Client(store, "ambulance-system", "ambulance", "system/*.rs", rsa_key=False)
    status, body = ask(api, form(client.assertion(iss=issuer, sub=issuer)))
    assert (status, body["error"]) == (401, "invalid_client"), body
    assert "is registered" in body["error_description"]
    status, body = ask(api, form(_unsigned(client).replace(".", ".", 1)))
    assert status == 401


@pytest.mark.parametrize("jti", ["\ud800", "a\x00b", "tab\there", "x" * 256])
def test_an_assertion_id_that_cannot_be_recorded_is_invalid_client(
    api: TestClient, store: Store, jti: str
) -> None:
    """Fuzzing found it: a signed assertion whose jti held a lone surrogate
    was a 500 when its first use was recorded."""
    client = Client(store, "ambulance-system", "ambulance", "system/*.rs", rsa_key=False)
    status, body = ask(api, form(client.assertion(jti=jti)))
    assert (status, body["error"]) == (401, "invalid_client"), body
    assert "jti must be printable text" in body["error_description"]


def test_a_replayed_assertion_is_refused(api: TestClient, store: Store) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/*.rs", rsa_key=False)
    assertion = client.assertion()
    assert ask(api, form(assertion))[0] == 200
    status, body = ask(api, form(assertion))
    assert (status, body["error"]) == (401, "invalid_client")
    assert "used before" in body["error_description"]


def test_a_disabled_client_gets_no_token_and_its_tokens_stop(api: TestClient, store: Store) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/*.rs", rsa_key=False)
    token = ask(api, form(client.assertion()))[1]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/fhir/Patient", headers=auth).status_code == 200
    ClientRegistry(store).disable("gp-system")
    refused = api.get("/fhir/Patient", headers=auth)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    status, body = ask(api, form(client.assertion()))
    assert (status, body["error"]) == (401, "invalid_client")


def test_key_rotation(api: TestClient, store: Store) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/*.rs", rsa_key=False)
    old_kid = client.jwk["kid"]
    new_key = ec.generate_private_key(ec.SECP384R1())
    new_jwk = to_jwk(new_key.public_key())
    registry = ClientRegistry(store)
    registry.rotate_key("gp-system", [new_jwk])
    assert ask(api, form(client.assertion()))[0] == 200  # the old key still works
    assert ask(api, form(client.assertion(key=new_key, kid=new_jwk["kid"])))[0] == 200
    registry.rotate_key("gp-system", [], retire=(old_kid,))
    assert ask(api, form(client.assertion()))[0] == 401
    assert ask(api, form(client.assertion(key=new_key, kid=new_jwk["kid"])))[0] == 200


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({"client_assertion_type": "urn:other"}, "invalid_request"),
        ({"client_assertion": ""}, "invalid_request"),
        ({"scope": ""}, "invalid_scope"),
        ({"scope": "patient/*.rs"}, "invalid_scope"),
        ({"scope": "system/Patient.rs?gender=male"}, "invalid_scope"),
        ({"scope": "system/Basic.rs"}, "invalid_scope"),
        ({"scope": "system/Observation.rs"}, "invalid_scope"),  # not in its registration
    ],
)
def test_bad_requests_are_oauth_errors(
    api: TestClient, store: Store, fields: dict[str, str], error: str
) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/Patient.rs", rsa_key=False)
    status, body = ask(api, form(client.assertion(), **fields))
    assert (status, body["error"]) == (400, error), body


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"purpose_of_use": "\x00"}, 400),
        ({"client_id": "gp\x00system"}, 200),  # the assertion says who it is; recorded escaped
        ({"purpose_of_use": "ETREAT", "break_glass_reason": "fell\x00down"}, 400),
        ({"purpose_of_use": "ETREAT", "break_glass_reason": "\x1b[2J"}, 400),
    ],
    ids=["nul-purpose", "nul-client-id", "nul-reason", "escape-reason"],
)
def test_a_nul_in_a_token_request_is_answered_and_audited(
    api: TestClient, store: Store, fields: dict[str, str], status: int
) -> None:
    """Fuzzing found it: a NUL in purpose_of_use could not be written to the
    audit log on PostgreSQL (its text holds none), a 500; a reason with one
    would have gone into the token and every audit entry made with it."""
    client = Client(store, "crew-system", "ambulance", "system/*.rs", rsa_key=False)
    answered, body = ask(api, form(client.assertion(), **fields))
    assert answered == status, body
    if status == 400:
        assert body["error"] == "invalid_request"


def test_a_token_never_carries_more_than_the_registration(api: TestClient, store: Store) -> None:
    client = Client(store, "gp-system", "gp-practice", "system/Patient.rs system/*.r", False)
    status, body = ask(api, form(client.assertion(), scope="system/*.cruds"))
    assert status == 200
    assert body["scope"] == "system/*.r system/Patient.rs"


def test_the_token_request_must_be_a_form(api: TestClient) -> None:
    response = api.post("/auth/token", json={"grant_type": "client_credentials"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


# -- purpose of use ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "outcome"),
    [
        ("ambulance", {"purpose_of_use": "ETREAT", "break_glass_reason": "999 call"}, "ETREAT"),
        ("hospital", {"purpose_of_use": "ETREAT", "break_glass_reason": "A&E"}, "ETREAT"),
        ("ambulance", {"purpose_of_use": "ETREAT"}, "invalid_request"),
        ("ambulance", {"purpose_of_use": "ETREAT", "break_glass_reason": "  "}, "invalid_request"),
        (
            "gp-practice",
            {"purpose_of_use": "ETREAT", "break_glass_reason": "x"},
            "unauthorized_client",
        ),
        ("council", {"purpose_of_use": "HCOMPL"}, "unauthorized_client"),
        ("auditor", {}, "HCOMPL"),
        ("auditor", {"purpose_of_use": "HCOMPL"}, "HCOMPL"),
        ("auditor", {"purpose_of_use": "TREAT"}, "unauthorized_client"),
        ("care-home", {}, "TREAT"),
        ("care-home", {"break_glass_reason": "why not"}, "invalid_request"),
        ("care-home", {"purpose_of_use": "SOMETHING"}, "invalid_request"),
        ("analytics", {"purpose_of_use": "POPHLTH"}, "POPHLTH"),
        ("analytics", {"purpose_of_use": "HOPERAT"}, "HOPERAT"),
        ("analytics", {"purpose_of_use": "HRESCH"}, "HRESCH"),
        ("analytics", {}, "invalid_request"),
        ("analytics", {"purpose_of_use": "TREAT"}, "unauthorized_client"),
        (
            "analytics",
            {"purpose_of_use": "ETREAT", "break_glass_reason": "x"},
            "unauthorized_client",
        ),
        ("analytics", {"purpose_of_use": "HCOMPL"}, "unauthorized_client"),
        ("analytics", {"purpose_of_use": "POPHLTH", "break_glass_reason": "x"}, "invalid_request"),
        ("gp-practice", {"purpose_of_use": "POPHLTH"}, "unauthorized_client"),
        ("hospital", {"purpose_of_use": "HRESCH"}, "unauthorized_client"),
        ("auditor", {"purpose_of_use": "HOPERAT"}, "unauthorized_client"),
    ],
)
def test_purpose_of_use_rules(
    api: TestClient, store: Store, kind: str, fields: dict[str, str], outcome: str
) -> None:
    client = Client(store, "some-system", kind, "system/*.rs", rsa_key=False)
    status, body = ask(api, form(client.assertion(), **fields))
    if outcome in {purpose.value for purpose in Purpose}:
        assert status == 200, body
        assert body["purpose_of_use"] == outcome
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["purpose_of_use"] == outcome
        if outcome == "ETREAT":
            assert claims["break_glass_reason"] == fields["break_glass_reason"]
    else:
        assert (status, body["error"]) == (400, outcome), body


# -- bearer tokens -----------------------------------------------------------------


def test_bad_bearer_tokens_are_401_with_a_challenge(api: TestClient, store: Store) -> None:
    good = access_token(store)
    registration = ClientRegistry(store).get("test-system")
    assert registration is not None
    expired, _ = TokenService(ec.generate_private_key(ec.SECP256R1()), lifetime_s=300).issue(
        registration, registration.scopes, Purpose.TREAT, None, now=0
    )
    from gateway.auth.tokens import signing_key

    outdated, _ = TokenService(signing_key(store), lifetime_s=60).issue(
        registration, registration.scopes, Purpose.TREAT, None, now=int(time.time()) - 120
    )
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for header in [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer",
        f"Bearer {expired}",  # signed by another key
        f"Bearer {outdated}",
        f"Bearer {tampered}",
        "Bearer not-a-token",
    ]:
        headers = {"Authorization": header} if header else {}
        response = api.get("/fhir/Patient", headers=headers)
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"].startswith('Bearer realm="fhir"')
        assert response.json()["resourceType"] == "OperationOutcome"
    assert api.get("/fhir/Patient", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    assert api.get("/fhir/metadata").status_code == 200  # needs no token


@pytest.mark.parametrize(
    "changed",
    [{"exp": []}, {"exp": {}}, {"exp": "soon"}, {"exp": 1e400}, {"org_kind": []}, {"scope": []}],
    ids=["exp-list", "exp-object", "exp-text", "exp-infinite", "org-kind-list", "scope-list"],
)
def test_a_token_with_claims_of_the_wrong_type_is_401(
    api: TestClient, store: Store, changed: dict[str, Any]
) -> None:
    """Fuzzing found it: a token signed with the gateway's key whose exp
    was a list raised TypeError (a 500) where it is as invalid as any."""
    from gateway.auth.tokens import signing_key

    good = access_token(store)
    claims = {**jwt.decode(good, options={"verify_signature": False}), **changed}
    payload = json.dumps(claims).encode()  # 1e400 is Infinity, as a client could send
    forged = jwt.api_jws.encode(payload, signing_key(store), algorithm="ES256")
    response = api.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


# -- scopes per interaction --------------------------------------------------------


def _as(api: TestClient, store: Store, scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(store, scopes=scopes)}"}


def test_each_interaction_needs_its_scope_letter(api: TestClient, store: Store) -> None:
    everything = _as(api, store, "system/*.cruds")
    pid = api.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=everything).json()[
        "id"
    ]
    read_only = _as(api, store, "system/Patient.r")
    search_only = _as(api, store, "system/Patient.s")
    patient = {"resourceType": "Patient", "id": pid}
    checks = [
        ("GET", f"/fhir/Patient/{pid}", None, read_only, 200),
        ("GET", f"/fhir/Patient/{pid}", None, search_only, 403),
        ("GET", f"/fhir/Patient/{pid}/_history/1", None, read_only, 200),
        ("GET", f"/fhir/Patient/{pid}/_history", None, read_only, 200),
        ("GET", "/fhir/Patient/_history", None, read_only, 403),
        ("GET", "/fhir/Patient/_history", None, search_only, 200),
        ("GET", "/fhir/Patient", None, read_only, 403),
        ("GET", "/fhir/Patient", None, search_only, 200),
        ("GET", "/fhir/Observation", None, search_only, 403),
        ("POST", "/fhir/Patient", {"resourceType": "Patient"}, read_only, 403),
        ("PUT", f"/fhir/Patient/{pid}", patient, read_only, 403),
        ("DELETE", f"/fhir/Patient/{pid}", None, read_only, 403),
        ("GET", "/fhir/_history", None, search_only, 403),
    ]
    for method, url, body, headers, status in checks:
        response = api.request(method, url, json=body, headers=headers)
        assert response.status_code == status, (method, url, response.text)
        if status == 403:
            assert response.json()["issue"][0]["code"] == "forbidden"
    v1 = _as(api, store, "system/Patient.read")
    assert api.get(f"/fhir/Patient/{pid}", headers=v1).status_code == 200
    assert api.get("/fhir/Patient", headers=v1).status_code == 200
    assert api.delete(f"/fhir/Patient/{pid}", headers=v1).status_code == 403
    writer = _as(api, store, "system/Patient.write")
    assert api.put(f"/fhir/Patient/{pid}", json=patient, headers=writer).status_code == 200
    assert api.get(f"/fhir/Patient/{pid}", headers=writer).status_code == 403


def test_searches_need_search_scope_on_every_type_they_touch(api: TestClient, store: Store) -> None:
    everything = _as(api, store, "system/*.cruds")
    pid = api.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=everything
    ).json()["id"]
    api.post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pulse"},
            "subject": {"reference": f"Patient/{pid}"},
        },
        headers=everything,
    )
    observations = _as(api, store, "system/Observation.rs")
    chained = api.get("/fhir/Observation?subject:Patient.gender=male", headers=observations)
    assert chained.status_code == 403
    has = api.get("/fhir/Patient?_has:Observation:subject:status=final", headers=observations)
    assert has.status_code == 403
    included = api.get("/fhir/Observation?_include=Observation:subject", headers=observations)
    assert included.status_code == 200
    assert {e["resource"]["resourceType"] for e in included.json()["entry"]} == {"Observation"}
    both = _as(api, store, "system/Observation.rs system/Patient.rs")
    included = api.get("/fhir/Observation?_include=Observation:subject", headers=both).json()
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {
        "Observation",
        "Patient",
    }
    system = api.get("/fhir?_id=" + pid, headers=observations).json()
    assert system.get("total") == 0  # the Patient is not among the types it may search
    assert api.get("/fhir?_type=Patient", headers=observations).status_code == 403


def test_bundle_entries_are_checked_against_the_scopes(api: TestClient, store: Store) -> None:
    reader = _as(api, store, "system/Patient.rs")
    create = {
        "request": {"method": "POST", "url": "Patient"},
        "resource": {"resourceType": "Patient"},
    }
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [create]}
    refused = api.post("/fhir", json=transaction, headers=reader)
    assert refused.status_code == 403
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [create]}
    answer = api.post("/fhir", json=batch, headers=reader)
    assert answer.status_code == 200
    assert answer.json()["entry"][0]["response"]["status"].startswith("403")
    assert api.get("/fhir/Patient", headers=reader).json()["total"] == 0


# -- who wrote it ------------------------------------------------------------------


def test_writes_are_authored_by_the_clients_organisation(api: TestClient, store: Store) -> None:
    token = access_token(store, client_id="care-system", kind="care-home", org="VM123")
    headers = {"Authorization": f"Bearer {token}"}
    created = api.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "meta": {"source": "urn:forged"}},
        headers=headers,
    ).json()
    assert created["meta"]["source"] == "urn:ods:VM123"
    found = api.get(f"/fhir/Provenance?target=Patient/{created['id']}", headers=headers).json()
    assert found["total"] == 1
    provenance = found["entry"][0]["resource"]
    assert provenance["target"] == [{"reference": f"Patient/{created['id']}/_history/1"}]
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"
    author, device = provenance["agent"]
    assert author["who"]["identifier"]["value"] == "VM123"
    assert device["who"]["identifier"]["value"] == "care-system"
    by_source = api.get("/fhir/Patient?_source=urn:ods:VM123", headers=headers).json()
    assert [e["resource"]["id"] for e in by_source["entry"]] == [created["id"]]


def test_tokens_issued_and_refused_are_audited(api: TestClient, store: Store) -> None:
    client = Client(store, "ambulance-system", "ambulance", "system/*.rs", rsa_key=False)
    issued = form(client.assertion(), purpose_of_use="ETREAT", break_glass_reason="cardiac arrest")
    assert ask(api, issued)[0] == 200
    assert ask(api, form(client.assertion(aud="https://elsewhere.example/token")))[0] == 401
    rows = store.select(
        "SELECT client_id, purpose, subtype, outcome, emergency, entry FROM audit_entry "
        "WHERE subtype = 'token' ORDER BY idx",
        [],
    )
    assert [(r[0], r[1], r[3], bool(r[4])) for r in rows] == [
        ("ambulance-system", "ETREAT", "0", True),
        ("ambulance-system", "TREAT", "4", False),
    ]
    granted, refused = (json.loads(bytes(r[5])) for r in rows)  # type: ignore[arg-type]
    assert granted["outcomeDesc"].startswith("token issued: system/")
    assert granted["agent"][0]["extension"][0]["valueString"] == "cardiac arrest"
    assert refused["outcomeDesc"].startswith("token refused: invalid_client")
