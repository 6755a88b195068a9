"""The application factory: settings and store in, an ASGI app out.

Nothing here is a module global, so tests build apps over stores of their own.
Every error, whether raised by the domain, by routing or by a bug, leaves as an
OperationOutcome with the status ``gateway.outcomes`` gives it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance import validation
from consent.labels import load_code_lists, use_code_lists
from gateway import errors, fhirjson, logs, outcomes
from gateway.access.index import ensure_current
from gateway.audit.checkpoint import load_or_create_signer
from gateway.audit.writer import AuditWriter
from gateway.auth.registrations import cache_of
from gateway.auth.tokens import TokenService, signing_key
from gateway.config import Settings
from gateway.console import routes as console
from gateway.console.sessions import session_key
from gateway.documents.signature import load_or_create_document_key
from gateway.http import audit, documents, oauth, responses
from gateway.http.middleware import RequestContext
from gateway.http.routes import ROUTES
from gateway.interactions.relabel import ensure_labelled
from gateway.loading.ids import ensure_keyed_ids, use_store_id_key
from gateway.search import extract
from gateway.store import Store, open_store

log = logging.getLogger("gateway")

_HTTP_ERRORS: dict[int, type[errors.GatewayError]] = {
    400: errors.InvalidRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    headers = None
    if isinstance(exc, errors.Unauthorized):
        challenge = 'Bearer realm="fhir"'
        if exc.bearer_error:
            challenge += f', error="{exc.bearer_error}"'
        headers = {"WWW-Authenticate": challenge}
    if isinstance(exc, errors.TooManyRequests):
        headers = {"Retry-After": str(max(1, exc.retry_after))}
    if isinstance(exc, errors.StoreUnavailable):
        log.error("store unavailable: %s", exc)
    return responses.error(exc, headers)


async def _routing_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_ERRORS.get(exc.status_code, errors.InvalidRequest)
    message = {
        404: f"there is no endpoint at {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    response = responses.error(kind(message, code=f"GW-0{exc.status_code}"))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    """The last resort: Starlette installs this handler outside every
    middleware, so it answers only what ``RequestContext`` (which answers an
    unexpected error inside the request, with its id and its audit entry)
    could not: a failure in the middleware itself."""
    log.exception(
        "unhandled error outside the request context on %s %s", request.method, request.url.path
    )
    return responses.FhirResponse(outcomes.unexpected(), status_code=500)


async def _healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return responses.FhirResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Readiness: the database answers."""
    await run_in_threadpool(request.app.state.store.ping)
    return responses.FhirResponse({"status": "ready"})


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """Build the gateway. Without ``store`` the app opens (and migrates) the
    one ``settings.database_url`` names when it starts, and closes it on exit.

    A plain Starlette app: every route is a Starlette ``Route`` whose handler
    reads the request itself, so FastAPI's dependency injection and request
    validation would only add their cost to each request."""

    # Read now: a code-list file that cannot be used stops the gateway here.
    use_code_lists(
        load_code_lists(settings.restricted_codes) if settings.restricted_codes else None
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = store is None
        app.state.store = (
            open_store(settings.database_url, pool_size=settings.db_pool_size) if owned else store
        )
        try:
            if owned:
                await run_in_threadpool(app.state.store.migrate)
                # Before anything maps: the store's key in force, its ids keyed.
                await run_in_threadpool(ensure_keyed_ids, app.state.store)
                await run_in_threadpool(ensure_current, app.state.store)
                await run_in_threadpool(ensure_labelled, app.state.store)
            else:
                await run_in_threadpool(use_store_id_key, app.state.store)
            await run_in_threadpool(validation.warm_up)
            await run_in_threadpool(extract.warm_up)  # fails at start, not on a write
            # One per event loop: async drivers bind to the loop they start on.
            app.state.reader = await app.state.store.open_async_reader()
            # Listening for changes from now, so the first requests can use it.
            app.state.registrations = cache_of(app.state.store)
            key = await run_in_threadpool(signing_key, app.state.store)
            app.state.tokens = TokenService(key, settings.token_lifetime_s)
            signer = await run_in_threadpool(load_or_create_signer, Path(settings.audit_key_path()))
            app.state.audit_signer = signer
            app.state.document_signer = await run_in_threadpool(
                load_or_create_document_key, Path(settings.document_key_path())
            )
            app.state.console_key = await run_in_threadpool(session_key, app.state.store)
            app.state.audit = AuditWriter(app.state.store, signer, settings.audit_checkpoint_s)
            # What start-up made (models, search parameters, code lists) lives
            # as long as the process: out of the collector's sight, so a full
            # collection (measured: 60-80 ms pauses under a document build's
            # allocations) scans only what requests make. Only a server's own
            # app: tests build many apps in one process.
            if owned:
                gc.collect()
                gc.freeze()
            try:
                yield
            finally:
                await run_in_threadpool(app.state.audit.close)
                await app.state.reader.aclose()
        finally:
            if owned:
                app.state.store.close()

    app = Starlette(
        # The FHIR routes first: the router tries routes in order.
        routes=[
            *ROUTES,
            *oauth.ROUTES,
            *audit.ROUTES,
            *documents.ROUTES,
            *console.ROUTES,
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
        ],
        middleware=[Middleware(RequestContext)],
        exception_handlers={
            errors.GatewayError: _gateway_error,
            HTTPException: _routing_error,
            # A bug's 500 is answered inside RequestContext; this only
            # catches what escapes the middleware itself.
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.started_at = fhirjson.instant()
    if store is not None:
        app.state.store = store
    logs.configure(settings.log_level)
    return app


def app_from_environment() -> Starlette:
    """The uvicorn factory (``--factory``) each worker process calls."""
    return create_app(Settings.from_env())
