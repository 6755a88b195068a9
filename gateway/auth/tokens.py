"""The gateway's access tokens: short-lived JWTs it signs with its own key.

A token names the requester the consent rules need (PRODUCT.md section 4):
the client, its organisation (ODS code, name, kind), the scopes granted, the
purpose of use and the break-glass reason. The signing key (ES256) is made
once and kept in the store's ``gateway_secret`` table, so every worker
process, and ``gateway token`` run beside them, signs and verifies alike.
Verified tokens are remembered until they expire: a signature check per
request would cost more than the read it guards.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from consent.model import Requester
from gateway.auth import keys
from gateway.auth.clients import ClientRegistration, OrgKind
from gateway.auth.scopes import Scopes
from gateway.store import Store
from gateway.store.secrets import kept_secret

SIGNING_ALGORITHM = "ES256"
_SECRET_NAME = "access-token-signing-key"
# Who issues and who accepts: this gateway, whatever address it was reached at.
ISSUER = "urn:london-care-gateway"
_AUDIENCE = "urn:london-care-gateway:fhir"
_REMEMBERED = 10_000  # verified tokens kept per process


class Purpose(StrEnum):
    """HL7 v3 PurposeOfUse codes the gateway knows
    (http://terminology.hl7.org/CodeSystem/v3-ActReason)."""

    TREAT = "TREAT"  # direct care
    ETREAT = "ETREAT"  # emergency treatment: break glass
    HCOMPL = "HCOMPL"  # compliance and audit
    # Secondary use, for organisations of kind analytics only.
    HOPERAT = "HOPERAT"  # healthcare operations (planning)
    POPHLTH = "POPHLTH"  # population health
    HRESCH = "HRESCH"  # healthcare research


@dataclass(frozen=True)
class AccessGrant:
    """What a verified access token grants: who is asking (the requester the
    consent rules and the audit entry read), the scopes, and until when."""

    requester: Requester
    scopes: Scopes
    token_id: str
    expires_at: int


class InvalidToken(Exception):
    """The bearer token cannot be used; the message says why."""


def signing_key(store: Store) -> ec.EllipticCurvePrivateKey:
    """The gateway's key, made and kept on first use."""
    pem = kept_secret(
        store,
        _SECRET_NAME,
        lambda: keys.private_pem(ec.generate_private_key(ec.SECP256R1())).decode(),
    )
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


class TokenService:
    """Issues and verifies the gateway's access tokens."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, lifetime_s: int) -> None:
        self._key = key
        self._public = key.public_key()
        self.lifetime_s = lifetime_s
        self._verified: OrderedDict[str, AccessGrant] = OrderedDict()

    def issue(
        self,
        client: ClientRegistration,
        scopes: Scopes,
        purpose: Purpose,
        reason: str | None,
        now: int,
    ) -> tuple[str, int]:
        """A signed token and its lifetime in seconds."""
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": _AUDIENCE,
            "sub": client.client_id,
            "iat": now,
            "exp": now + self.lifetime_s,
            "jti": str(uuid.uuid4()),
            "scope": str(scopes),
            "client_name": client.name,
            "org": client.org_ods,
            "org_name": client.org_name,
            "org_kind": client.kind.value,
            "purpose_of_use": purpose.value,
        }
        if reason:
            claims["break_glass_reason"] = reason
        return jwt.encode(claims, self._key, algorithm=SIGNING_ALGORITHM), self.lifetime_s

    def verify(self, token: str, now: int) -> AccessGrant:
        """The requester a token names; ``InvalidToken`` if it is not one of
        ours, has been altered, or has expired. Whether its client is still
        enabled is the caller's to check, on every use."""
        known = self._verified.get(token)
        if known is None:
            known = self._decode(token)
            self._verified[token] = known
            if len(self._verified) > _REMEMBERED:
                self._verified.popitem(last=False)
        if known.expires_at <= now:
            self._verified.pop(token, None)
            raise InvalidToken("the access token has expired")
        return known

    def _decode(self, token: str) -> AccessGrant:
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[SIGNING_ALGORITHM],
                audience=_AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "scope"], "verify_exp": False},
            )
            requester = Requester(
                client_id=str(claims["sub"]),
                client_name=str(claims.get("client_name", claims["sub"])),
                org_ods=str(claims["org"]),
                org_name=str(claims["org_name"]),
                kind=OrgKind(claims["org_kind"]).value,
                purpose=Purpose(claims["purpose_of_use"]).value,
                reason=claims.get("break_glass_reason"),
            )
            return AccessGrant(
                requester=requester,
                scopes=Scopes.parse(str(claims["scope"])),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError, OverflowError) as exc:
            # A claim of the wrong type (an exp that is a list) is as invalid
            # as a missing one.
            raise InvalidToken(f"the access token is not valid: {exc}") from exc
