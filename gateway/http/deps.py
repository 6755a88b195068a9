"""What every FHIR handler does before its work, in one call: the format
check, the requester check and the request's context (store, base URL)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from starlette.requests import Request

from consent.model import Requester as ConsentRequester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.facts import person_of
from gateway.audit.events import Asker, Disclosures
from gateway.auth.clients import registration_async
from gateway.auth.scopes import Permission
from gateway.auth.tokens import InvalidToken, Requester, TokenService
from gateway.config import Settings
from gateway.errors import Forbidden, Unauthorized
from gateway.http.negotiation import check_acceptable
from gateway.interactions.provenance import Author
from gateway.store import AsyncReader, Querier, Store, StoredVersion

_VERBS = {
    Permission.CREATE: "creating",
    Permission.READ: "reading",
    Permission.UPDATE: "updating",
    Permission.DELETE: "deleting",
    Permission.SEARCH: "searching",
}


@dataclass(frozen=True, slots=True)
class FhirContext:
    store: Store
    reader: AsyncReader  # reads on the event loop (the hot path)
    settings: Settings
    base_url: str  # the FHIR base, without a trailing slash
    requester: Requester | None = None  # who is asking; None on public endpoints
    # What this request's consent decisions said, for its audit entry.
    disclosures: Disclosures | None = None

    @property
    def who(self) -> Requester:
        """The requester of an authenticated request."""
        assert self.requester is not None, "authenticated() was not called"
        return self.requester

    @property
    def author(self) -> Author:
        """Whom this request's writes are recorded as authored by."""
        who = self.who
        return Author(who.org_ods, who.org_name, who.client_id, who.client_name)

    def access(self, reader: Querier | None = None) -> AccessControl:
        """The consent decisions of this request (one per request: what the
        data says now is what counts), from what ``reader`` (by default the
        store) reads."""
        who = self.who
        return AccessControl(
            reader or self.store,
            ConsentRequester(
                org_ods=who.org_ods,
                kind=who.kind.value,
                purpose=who.purpose.value,
                client_id=who.client_id,
            ),
            on_decision=self.disclosures.add if self.disclosures is not None else None,
        )

    def wrote(self, version: StoredVersion) -> None:
        """Note a version this request wrote, for its audit entry."""
        if self.disclosures is None:
            return
        person = None
        if version.content is not None:
            person = person_of(fhirjson.loads(version.content))
        elif version.res_type == "Patient":
            person = version.res_id
        self.wrote_reference(
            f"{version.res_type}/{version.res_id}/_history/{version.version}", person
        )

    def wrote_reference(self, reference: str, person: str | None) -> None:
        """Note a version (``Patient/1/_history/2``) this request wrote, and
        whom it is about, for its audit entry."""
        if self.disclosures is not None:
            self.disclosures.wrote(reference, person)

    def found_nothing(self) -> None:
        """Note that this request's answer, or an entry of it, found nothing
        to show (see ``Disclosures.found_nothing``)."""
        if self.disclosures is not None:
            self.disclosures.found_nothing = True

    def allow_letter(self, res_type: str, permission: str) -> None:
        """``allow`` for the domain's ``Authorize`` callbacks (SMART letters)."""
        self.allow(res_type, Permission(permission))

    def allow(self, res_type: str, permission: Permission) -> None:
        """Refuse (403) an interaction the token's scopes do not grant."""
        if not self.who.scopes.allows(res_type, permission):
            raise Forbidden(
                f"the access token's scopes ({self.who.scopes}) do not allow "
                f"{_VERBS[permission]} {res_type}",
                code="GW-0610",
            )


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


def _negotiated(request: Request, html: bool = False) -> FhirContext:
    headers = request.headers
    fmt = request.query_params.get("_format") if request.scope["query_string"] else None
    check_acceptable(headers.get("accept"), fmt, html)
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


async def authenticated(request: Request, html: bool = False) -> FhirContext:
    """For every endpoint that reads or writes data: the bearer token must be
    one the gateway issued, unexpired, to a client that is still enabled
    (checked on every request, so disabling a client stops its tokens at once).
    ``html``: the endpoint can answer in HTML too (a document)."""
    context = _negotiated(request, html)
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
        requester = tokens.verify(token.strip(), int(time.time()))
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="GW-0603", bearer_error="invalid_token") from None
    client = await registration_async(context.reader, requester.client_id)
    if client is None or client.disabled:
        raise Unauthorized(
            f"client {requester.client_id!r} is disabled; its tokens are no longer accepted",
            code="GW-0604",
            bearer_error="invalid_token",
        )
    disclosures = Disclosures()
    # The audit entry the middleware writes before the response leaves.
    request.scope.setdefault("state", {})["audit"] = (
        Asker(
            client_id=requester.client_id,
            client_name=requester.client_name,
            org_ods=requester.org_ods,
            org_name=requester.org_name,
            kind=requester.kind.value,
            purpose=requester.purpose.value,
            reason=requester.reason,
        ),
        disclosures,
    )
    return dataclasses.replace(context, requester=requester, disclosures=disclosures)
