"""What every FHIR handler does before its work, in one call: the format
check, the requester check and the request's context (store, base URL)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.config import Settings
from gateway.errors import Unauthorized
from gateway.http.negotiation import check_acceptable
from gateway.store import AsyncReader, Store


@dataclass(frozen=True, slots=True)
class FhirContext:
    store: Store
    reader: AsyncReader  # reads on the event loop (the hot path)
    settings: Settings
    base_url: str  # the FHIR base, without a trailing slash


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


def _negotiated(request: Request) -> FhirContext:
    headers = request.headers
    fmt = request.query_params.get("_format") if request.scope["query_string"] else None
    check_acceptable(headers.get("accept"), fmt)
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


def authenticated(request: Request) -> FhirContext:
    """For every endpoint that reads or writes data.

    Until SMART Backend Services authentication is in place, data endpoints
    refuse every request unless the server was started with the explicit
    development switch that says it is insecure.
    """
    context = _negotiated(request)
    if not context.settings.insecure_no_auth:
        raise Unauthorized(
            "this endpoint needs an authenticated client, and this server does not yet "
            "accept any credentials (start it with --insecure-no-auth for local "
            "development only)",
            code="GW-0401",
        )
    return context
