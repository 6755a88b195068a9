"""The application factory: settings and store in, an ASGI app out.

Nothing here is a module global, so tests build apps over stores of their own.
Every error, whether raised by the domain, by routing or by a bug, leaves as an
OperationOutcome with the status ``gateway.outcomes`` gives it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from conformance import validation
from gateway import __version__, errors, fhirjson, logs
from gateway.config import Settings
from gateway.http import responses
from gateway.http.middleware import RequestContext
from gateway.http.routes import ROUTES
from gateway.search import extract
from gateway.search.index import ensure_current
from gateway.store import Store, open_store

log = logging.getLogger("gateway")

_HTTP_ERRORS: dict[int, type[errors.GatewayError]] = {
    400: errors.InvalidRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the gateway. Without ``store`` the app opens (and migrates) the
    one ``settings.database_url`` names when it starts, and closes it on exit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.store = (
            open_store(settings.database_url, pool_size=settings.db_pool_size) if owned else store
        )
        try:
            if owned:
                await run_in_threadpool(app.state.store.migrate)
                await run_in_threadpool(ensure_current, app.state.store)
            await run_in_threadpool(validation.warm_up)
            await run_in_threadpool(extract.warm_up)  # fails at start, not on a write
            # One per event loop: async drivers bind to the loop they start on.
            app.state.reader = await app.state.store.open_async_reader()
            app.state.writes = CapacityLimiter(app.state.store.concurrent_writers)
            try:
                yield
            finally:
                await app.state.reader.aclose()
        finally:
            if owned:
                app.state.store.close()

    app = FastAPI(
        title="London care gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # No OpenTelemetry here: with it off, FastAPI skips its per-request
        # provider checks (about a tenth of a read's time).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.started_at = fhirjson.instant()
    if store is not None:
        app.state.store = store

    @app.exception_handler(errors.GatewayError)
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.GatewayError)
        headers = None
        if isinstance(exc, errors.Unauthorized):
            headers = {"WWW-Authenticate": 'Bearer realm="fhir"'}
        if isinstance(exc, errors.StoreUnavailable):
            log.error("store unavailable: %s", exc)
        return responses.error(exc, headers)

    @app.exception_handler(HTTPException)
    async def routing_error(request: Request, exc: Exception) -> Response:
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

    @app.exception_handler(RequestValidationError)
    async def malformed_request(request: Request, exc: Exception) -> Response:
        return responses.error(errors.InvalidRequest(str(exc), code="GW-0102"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return responses.FhirResponse(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "fatal",
                        "code": "exception",
                        "diagnostics": "GW-0500: internal error; quote the X-Request-Id "
                        "header to the gateway's operators",
                    }
                ],
            },
            status_code=500,
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Liveness: the process answers."""
        return responses.FhirResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Readiness: the database answers."""
        await run_in_threadpool(request.app.state.store.ping)
        return responses.FhirResponse({"status": "ready"})

    # The FHIR routes first: the router tries routes in order.
    app.router.routes[:0] = ROUTES
    app.add_middleware(RequestContext)
    logs.configure(settings.log_level)
    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory (``--factory``) each worker process calls."""
    return create_app(Settings.from_env())
