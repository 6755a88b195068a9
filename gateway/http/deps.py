"""What every FHIR handler does before its work, in one call: the format
check, the requester check and the request's context: its base URL and,
for an authenticated request, the repository bound to the requester
(``gateway.repository``), the only way the handler reaches resources."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from starlette.requests import Request

from consent.model import Requester
from gateway.audit.events import Disclosures, subtype_of
from gateway.auth.clients import registration_async
from gateway.auth.scopes import Scopes
from gateway.auth.tokens import InvalidToken, TokenService
from gateway.config import Settings
from gateway.errors import Unauthorized
from gateway.http.limits import ClientLimiter
from gateway.http.negotiation import check_acceptable
from gateway.repository import Repository, RequestLine
from gateway.store import AsyncReader, Store, budget


@dataclass(frozen=True, slots=True)
class FhirContext:
    store: Store
    reader: AsyncReader  # reads on the event loop (the hot path)
    settings: Settings
    base_url: str  # the FHIR base, without a trailing slash
    # The request's repository, bound to who is asking; None on public
    # endpoints. Everything an authenticated handler does with resources, it
    # does through this.
    repository: Repository | None = None

    @property
    def repo(self) -> Repository:
        """The repository of an authenticated request."""
        assert self.repository is not None, "authenticated() was not called"
        return self.repository

    @property
    def who(self) -> Requester:
        """The requester of an authenticated request."""
        return self.repo.requester

    @property
    def scopes(self) -> Scopes:
        """What the token of an authenticated request grants."""
        return self.repo.scopes


def base_url(request: Request, settings: Settings) -> str:
    """The configured public base, or the one this request was addressed to
    (Host header, else the server's address), as Starlette's ``base_url``
    would give it but without building URL objects on every request."""
    if settings.base_url:
        return settings.base_url
    scope = request.scope
    host = request.headers.get("host")
    if host is None:
        server_host, port = scope.get("server") or ("localhost", None)
        host = server_host if port in (None, 80, 443) else f"{server_host}:{port}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}/fhir"


def _negotiated(request: Request, html: bool = False, ndjson: bool = False) -> FhirContext:
    headers = request.headers
    fmt = request.query_params.get("_format") if request.scope["query_string"] else None
    check_acceptable(headers.get("accept"), fmt, html, ndjson)
    settings: Settings = request.app.state.settings
    return FhirContext(
        store=request.app.state.store,
        reader=request.app.state.reader,
        settings=settings,
        base_url=base_url(request, settings),
    )


def public(request: Request) -> FhirContext:
    """For endpoints anyone may call (the CapabilityStatement)."""
    return _negotiated(request)


async def authenticated(
    request: Request, html: bool = False, *, bulk: bool = False, ndjson: bool = False
) -> FhirContext:
    """For every endpoint that reads or writes data: the bearer token must be
    one the gateway issued, unexpired, to a client that is still enabled
    (checked on every request, so disabling a client stops its tokens at once).
    ``html``: the endpoint can answer in HTML too (a document). ``bulk``:
    the endpoint is bulk export's, for secondary use alone; every other is
    for direct care alone. ``ndjson``: it answers in NDJSON (an export's
    file)."""
    context = _negotiated(request, html, ndjson)
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "this endpoint needs an access token: get one at /auth/token (SMART Backend "
            "Services) and send it as 'Authorization: Bearer <token>'",
            code="GW-0601",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be 'Bearer <access token>'",
            code="GW-0602",
            bearer_error="invalid_request",
        )
    tokens: TokenService = request.app.state.tokens
    try:
        grant = tokens.verify(token.strip(), int(time.time()))
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="GW-0603", bearer_error="invalid_token") from None
    requester = grant.requester
    client = await registration_async(
        request.app.state.registrations, context.reader, requester.client_id
    )
    if client is None or client.disabled:
        raise Unauthorized(
            f"client {requester.client_id!r} is disabled; its tokens are no longer accepted",
            code="GW-0604",
            bearer_error="invalid_token",
        )
    disclosures = Disclosures()
    scope = request.scope
    line = RequestLine(
        request_id=scope["state"]["request_id"],
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        subtype=subtype_of(getattr(scope.get("endpoint"), "__name__", "")),
    )
    repository = Repository(
        context.store, context.reader, grant, disclosures, context.base_url, line
    )
    # The audit entry the middleware writes before the response leaves.
    state = request.scope.setdefault("state", {})
    state["audit"] = (requester, disclosures)
    # After the entry is arranged: a refusal is audited.
    if "client_slot" not in state:
        # The client's limits (429 over them), before any work; the slot
        # is released by RequestContext once the answer has gone.
        limiter: ClientLimiter = request.app.state.limiter
        state["client_slot"] = (limiter, limiter.admit(client))
        settings = context.settings
        budget.start(settings.work_budget_ms, settings.work_budget_rows)
    if bulk:
        repository.require_secondary_use()
    else:
        # The type the interaction is on (not a compartment's: its owner's).
        on = None if "owner_type" in request.path_params else request.path_params.get("res_type")
        repository.require_direct_care(on)
    return dataclasses.replace(context, repository=repository)
