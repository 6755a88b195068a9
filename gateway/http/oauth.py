"""SMART Backend Services over HTTP: discovery and the token endpoint.

https://hl7.org/fhir/smart-app-launch/conformance.html (the
``.well-known/smart-configuration`` document) and
https://hl7.org/fhir/smart-app-launch/backend-services.html (the token
request). The work is ``gateway.auth.exchange``; this module reads the form
and writes OAuth JSON, never an OperationOutcome, as OAuth clients expect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import fhirjson
from gateway.audit.events import token_event
from gateway.auth import keys
from gateway.auth.clients import ClientRegistry
from gateway.auth.exchange import OAuthError, exchange, record_first_use
from gateway.auth.tokens import Purpose, TokenService
from gateway.config import Settings
from gateway.errors import AuditFailure, PayloadTooLarge
from gateway.http.deps import base_url
from gateway.http.limits import FailureThrottle
from gateway.http.middleware import read_body
from gateway.store import Store

TOKEN_PATH = "/auth/token"
_FORM_LIMIT = 64 * 1024  # a token request is a few kilobytes
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_urls(request: Request, settings: Settings) -> list[str]:
    """The token endpoint's URL as configured and as this request reached it:
    the ``aud`` a client assertion may carry."""
    urls = []
    if settings.base_url:
        urls.append(settings.base_url.removesuffix("/fhir") + TOKEN_PATH)
    reached = base_url(request, Settings()).removesuffix("/fhir") + TOKEN_PATH
    if reached not in urls:
        urls.append(reached)
    return urls


async def smart_configuration(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {
            "issuer": base_url(request, settings).removesuffix("/fhir"),
            "token_endpoint": token_urls(request, settings)[0],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(keys.ALGORITHMS),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.cruds", "system/*.rs", "system/*.read"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
            # The gateway's own fields of the token request (PRODUCT.md section 6).
            "purposes_of_use_supported": [p.value for p in Purpose],
        },
        headers={"Cache-Control": "max-age=3600"},
    )


def _oauth_error(error: OAuthError) -> Response:
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="token", error="invalid_client"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def token(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _oauth_error(
            OAuthError(
                "invalid_request", "send the token request as application/x-www-form-urlencoded"
            )
        )
    try:
        body = await read_body(request.receive, dict(request.headers), _FORM_LIMIT)
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except PayloadTooLarge:
        return _oauth_error(OAuthError("invalid_request", "the token request is too large"))
    except UnicodeDecodeError:
        return _oauth_error(OAuthError("invalid_request", "the form body is not UTF-8"))
    # Failed requests are bounded per source and claimed client, before any
    # work is done for this one (``gateway.http.limits``).
    failures: FailureThrottle = request.app.state.token_failures
    source = request.client.host if request.client is not None else "unknown"
    claimed = _claimed_client(form)
    wait = failures.refused(source, claimed)
    if wait is not None:
        throttled = OAuthError(
            "slow_down",
            f"too many failed token requests from this address; try again in {wait} s",
            429,
        )
        await _audit_token(request, form, None, f"{throttled.error}: {throttled.description}")
        refusal = _oauth_error(throttled)
        refusal.headers["Retry-After"] = str(wait)
        return refusal
    store: Store = request.app.state.store
    tokens: TokenService = request.app.state.tokens
    registry = ClientRegistry(store)
    now = int(time.time())
    urls = token_urls(request, settings)

    def work() -> dict[str, Any]:
        return exchange(
            form,
            token_urls=urls,
            client_for=registry.current,
            first_use=lambda client_id, jti, exp: record_first_use(store, client_id, jti, exp, now),
            tokens=tokens,
            now=now,
        )

    try:
        answer = await run_in_threadpool(work)
    except OAuthError as exc:
        failures.failed(source, claimed)
        await _audit_token(request, form, None, f"{exc.error}: {exc.description}")
        return _oauth_error(exc)
    await _audit_token(request, form, str(answer.get("scope", "")), None)
    return JSONResponse(answer, headers=_NO_STORE)


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _claimed_client(form: dict[str, list[str]]) -> str | None:
    """Who the request says it is: ``client_id``, or the assertion's issuer
    (read, not trusted: this is for the record, whatever the outcome)."""
    named = _first(form, "client_id")
    if named:
        return _recordable(named[:200])
    assertion = _first(form, "client_assertion")
    if not assertion:
        return None
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        return None
    return _recordable(issuer[:200])


def _recordable(text: str | None) -> str | None:
    """``text`` as the audit log can hold it on either database: a NUL
    (PostgreSQL's text has none) or a lone surrogate (JSON may escape one;
    UTF-8 has none) written as its escape."""
    if text is None:
        return None
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


async def _audit_token(
    request: Request, form: dict[str, list[str]], granted: str | None, error: str | None
) -> None:
    """Record the token issued or refused before answering; if that cannot
    be done, no token leaves (the caller answers 500)."""
    record = token_event(
        recorded=fhirjson.instant(),
        request_id=request.scope.get("state", {}).get("request_id", ""),
        client_id=_claimed_client(form),
        purpose=_recordable((form.get("purpose_of_use") or ["TREAT"])[0][:20]),
        reason=_recordable(_first(form, "break_glass_reason")),
        granted=granted,
        error=error,
    )
    try:
        await asyncio.wait_for(asyncio.wrap_future(request.app.state.audit.submit([record])), 30.0)
    except Exception as exc:
        raise AuditFailure(f"the token request could not be audited: {exc}") from None


ROUTES = [
    Route("/fhir/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
    Route("/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
    Route(TOKEN_PATH, token, methods=["POST"]),
]
