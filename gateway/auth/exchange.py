"""The token endpoint's work: a client assertion in, an access token out.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html)
with the asymmetric client authentication profile
(https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html):
``grant_type=client_credentials``, a ``client_assertion`` JWT signed RS384 or
ES384 with a key the client registered (found by ``kid``), ``iss`` = ``sub``
= the client id, ``aud`` = the token endpoint's URL, ``exp`` at most five
minutes ahead, and a ``jti`` never used before. The gateway's two extra form
fields choose the purpose of use (PRODUCT.md section 4): ``purpose_of_use``
(TREAT by default, ETREAT, HCOMPL, and for analytics clients only the
secondary-use purposes HOPERAT, POPHLTH, HRESCH) and ``break_glass_reason``.

Refusals are OAuth 2.0 errors (RFC 6749 section 5.2) with a description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from consent.model import SECONDARY_USE
from gateway.auth import keys
from gateway.auth.clients import ClientRegistration, OrgKind
from gateway.auth.scopes import ScopeError, Scopes
from gateway.auth.tokens import Purpose, TokenService
from gateway.store import Store

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300
_LEEWAY_S = 30  # clock skew allowed when judging an assertion's expiry
_EMERGENCY_KINDS = frozenset({OrgKind.AMBULANCE, OrgKind.HOSPITAL})
_REASON_MAX = 500
_JTI_MAX = 255  # an assertion's id, recorded against replay
# What no text a person writes holds (tabs and line ends aside), and a NUL
# no PostgreSQL text can.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class OAuthError(Exception):
    """An OAuth 2.0 error response: ``error`` code, description, HTTP status."""

    error: str
    description: str
    status: int = 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def _one(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name, [])
    if len(values) > 1:
        raise OAuthError("invalid_request", f"{name} is given more than once")
    return values[0] if values else None


def _purpose(kind: OrgKind, asked: str | None, reason: str | None) -> Purpose:
    if (asked is None or asked == "") and kind is OrgKind.ANALYTICS:
        # Three purposes and no default among them: which one is what the
        # organisation's agreement allows, so the client must say.
        raise OAuthError(
            "invalid_request",
            "an analytics client must ask for purpose_of_use " + ", ".join(sorted(SECONDARY_USE)),
        )
    if asked is None or asked == "":
        purpose = Purpose.HCOMPL if kind is OrgKind.AUDITOR else Purpose.TREAT
    else:
        try:
            purpose = Purpose(asked)
        except ValueError:
            raise OAuthError(
                "invalid_request",
                f"purpose_of_use {asked!r}: one of {', '.join(p.value for p in Purpose)}",
            ) from None
    if kind is OrgKind.AUDITOR and purpose is not Purpose.HCOMPL:
        raise OAuthError("unauthorized_client", "an auditor client may ask for HCOMPL only")
    if purpose is Purpose.HCOMPL and kind is not OrgKind.AUDITOR:
        raise OAuthError("unauthorized_client", "HCOMPL is for auditor clients only")
    secondary = purpose.value in SECONDARY_USE
    if secondary and kind is not OrgKind.ANALYTICS:
        raise OAuthError(
            "unauthorized_client", f"{purpose} (secondary use) is for analytics clients only"
        )
    if kind is OrgKind.ANALYTICS and not secondary:
        # A population health team never gives direct care, so it may not
        # ask for what direct care opens (TREAT, ETREAT).
        raise OAuthError(
            "unauthorized_client",
            "an analytics client may ask for "
            + ", ".join(sorted(SECONDARY_USE))
            + " (secondary use) only",
        )
    if purpose is Purpose.ETREAT:
        if kind not in _EMERGENCY_KINDS:
            raise OAuthError(
                "unauthorized_client",
                f"ETREAT (emergency access) is for ambulance and hospital clients, not {kind}",
            )
        if not reason:
            raise OAuthError("invalid_request", "ETREAT needs a break_glass_reason")
    elif reason:
        raise OAuthError("invalid_request", "break_glass_reason goes with ETREAT only")
    return purpose


def _verified_claims(
    assertion: str, client: ClientRegistration, kid: str, alg: str, audiences: Collection[str]
) -> dict[str, Any]:
    jwk = client.key(kid)
    if jwk is None:
        raise _invalid_client(f"client {client.client_id!r} has no registered key {kid!r}")
    if jwk.get("alg") != alg:
        raise _invalid_client(f"key {kid!r} signs {jwk.get('alg')}, the assertion says {alg}")
    try:
        return jwt.decode(
            assertion,
            keys.from_jwk(jwk),
            algorithms=[alg],
            audience=list(audiences),
            leeway=_LEEWAY_S,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise _invalid_client("the client assertion has expired") from None
    except jwt.InvalidAudienceError:
        raise _invalid_client(
            f"the client assertion's aud must be the token endpoint ({next(iter(audiences))})"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise _invalid_client(f"the client assertion is not valid: {exc}") from None


def exchange(
    form: Mapping[str, list[str]],
    *,
    token_urls: Collection[str],
    client_for: Callable[[str], ClientRegistration | None],
    first_use: Callable[[str, str, int], bool],
    tokens: TokenService,
    now: int,
) -> dict[str, Any]:
    """The token response for a token request's form fields.

    ``token_urls`` are the URLs the assertion's ``aud`` may name (the
    configured one, or the one the request came to); ``first_use(client_id,
    jti, expires_at)`` records an assertion's ``jti`` and says whether it is
    new. Raises ``OAuthError``."""
    grant_type = _one(form, "grant_type")
    if grant_type != "client_credentials":
        raise OAuthError(
            "unsupported_grant_type" if grant_type else "invalid_request",
            "grant_type must be client_credentials",
        )
    if _one(form, "client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = _one(form, "client_assertion")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is missing")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise _invalid_client(f"the client assertion is not a JWT: {exc}") from None
    alg = header.get("alg")
    if alg not in keys.ALGORITHMS:
        raise _invalid_client(
            f"the client assertion is signed {alg!r}; RS384 or ES384 are accepted"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _invalid_client("the client assertion's header names no kid")
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise _invalid_client("the client assertion has no iss")
    client = client_for(client_id)
    if client is None:
        raise _invalid_client(f"no client {client_id!r} is registered")
    if client.disabled:
        raise _invalid_client(f"client {client_id!r} is disabled")
    claims = _verified_claims(assertion, client, kid, alg, token_urls)
    if claims["sub"] != client_id:
        raise _invalid_client("the client assertion's sub must equal its iss (the client id)")
    expires_at = int(claims["exp"])
    if expires_at > now + MAX_ASSERTION_LIFETIME_S:
        raise _invalid_client("the client assertion's exp is more than five minutes ahead")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _invalid_client("the client assertion's jti is empty")
    # It is recorded against replay: text either database can hold (no NUL,
    # no lone surrogate), of a size an identifier has.
    if len(jti) > _JTI_MAX or not jti.isprintable():
        raise _invalid_client(
            f"the client assertion's jti must be printable text of at most {_JTI_MAX} characters"
        )

    asked = _one(form, "scope")
    if not asked or not asked.strip():
        raise OAuthError("invalid_scope", "no scope asked for")
    try:
        requested = Scopes.parse(asked)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    granted = requested.narrowed_to(client.scopes)
    if not granted:
        raise OAuthError(
            "invalid_scope",
            f"client {client_id!r} may be granted {client.scopes}, none of {asked!r}",
        )
    reason = (_one(form, "break_glass_reason") or "").strip() or None
    if reason is not None and len(reason) > _REASON_MAX:
        raise OAuthError("invalid_request", f"break_glass_reason is over {_REASON_MAX} characters")
    if reason is not None and _CONTROL.search(reason):
        # It goes into the token and every audit entry made with it.
        raise OAuthError("invalid_request", "break_glass_reason holds a control character")
    purpose = _purpose(client.kind, _one(form, "purpose_of_use"), reason)
    # Last, so that a request refused for its scope or purpose can be
    # corrected and sent again with the same assertion.
    if not first_use(client_id, jti, expires_at):
        raise _invalid_client("this client assertion (jti) has been used before")
    token, lifetime = tokens.issue(client, granted, purpose, reason, now)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": str(granted),
        "purpose_of_use": purpose.value,
    }


def record_first_use(store: Store, client_id: str, jti: str, expires_at: int, now: int) -> bool:
    """Record an assertion's jti; ``False`` if it is already recorded (a
    replay). Records past their assertion's expiry go first: such an
    assertion is refused for its ``exp`` anyway."""
    with store.unit_of_work() as uow:
        uow.execute("DELETE FROM auth_assertion WHERE expires_at < ?", [now - _LEEWAY_S])
        return bool(
            uow.execute(
                "INSERT INTO auth_assertion (client_id, jti, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id, jti) DO NOTHING",
                [client_id, jti, expires_at],
            )
        )
