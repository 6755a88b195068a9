"""The application factory: settings and store in, an ASGI app out.

Nothing here is a module global, so tests build apps over stores of their own.
Every error, whether raised by the domain, by routing or by a bug, leaves as an
OperationOutcome with the status ``gateway.outcomes`` gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
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
from gateway import errors, fhirjson, logs, metrics, outcomes
from gateway.access.index import ensure_current
from gateway.audit.checkpoint import signer_of_log
from gateway.audit.log import latest_checkpoint
from gateway.audit.writer import AuditWriter
from gateway.auth.registrations import cache_of
from gateway.auth.tokens import TokenService, signing_key
from gateway.config import Settings
from gateway.console import routes as console
from gateway.console.sessions import session_key
from gateway.documents.keys import PublishedKeys, document_signer
from gateway.http import audit, documents, health, oauth, responses
from gateway.http.limits import ClientLimiter, FailureThrottle, Limits
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


# What a start that meets its database unavailable (or its key files'
# folder unwritable) waits for, trying again with these pauses (seconds).
_RETRYABLE = (errors.StoreUnavailable, OSError)
_START_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
# How often each worker samples the gauges others cannot count (pool use).
_SAMPLE_EVERY_S = 5.0


async def _start(app: Starlette, settings: Settings, given: Store | None) -> None:
    """Everything a worker needs before it serves, on ``app.state``; on
    failure what it had opened is closed again, for the next try."""
    owned = given is None
    store: Store = (
        await run_in_threadpool(open_store, settings.database_url, pool_size=settings.db_pool_size)
        if given is None
        else given
    )
    reader = None
    try:
        if owned:
            await run_in_threadpool(store.migrate)
            # Before anything maps: the store's key in force, its ids keyed.
            await run_in_threadpool(ensure_keyed_ids, store)
            await run_in_threadpool(ensure_current, store)
            await run_in_threadpool(ensure_labelled, store)
        else:
            await run_in_threadpool(use_store_id_key, store)
        await run_in_threadpool(validation.warm_up)
        await run_in_threadpool(extract.warm_up)  # fails at start, not on a write
        # One per event loop: async drivers bind to the loop they start on.
        reader = await store.open_async_reader()
        key = await run_in_threadpool(signing_key, store)
        latest = await run_in_threadpool(latest_checkpoint, store)
        signer = await run_in_threadpool(signer_of_log, Path(settings.audit_key_path()), latest)
        documents = await run_in_threadpool(
            document_signer, store, Path(settings.document_key_path())
        )
        console_key = await run_in_threadpool(session_key, store)
    except BaseException:
        if reader is not None:
            await reader.aclose()
        if owned:
            await run_in_threadpool(store.close)
        raise
    app.state.store = store
    app.state.reader = reader
    # Listening for changes from now, so the first requests can use it.
    app.state.registrations = cache_of(store)
    app.state.tokens = TokenService(key, settings.token_lifetime_s)
    app.state.audit_signer = signer
    app.state.document_signer = documents
    app.state.document_keys = PublishedKeys(store, documents)
    app.state.console_key = console_key
    app.state.audit = AuditWriter(store, signer, settings.audit_checkpoint_s)
    app.state.startup_problem = None
    app.state.serving = True


async def _keep_starting(app: Starlette, settings: Settings) -> None:
    """Try ``_start`` again, with growing pauses, until it succeeds: a
    worker that meets its database unavailable stays up, answering 503,
    rather than exiting (which would stop uvicorn's supervisor)."""
    attempt = 0
    while True:
        pause = _START_BACKOFF_S[min(attempt, len(_START_BACKOFF_S) - 1)]
        await asyncio.sleep(pause)
        attempt += 1
        try:
            await _start(app, settings, None)
        except _RETRYABLE as exc:
            app.state.startup_problem = str(exc)
            log.error(
                "start-up attempt %d failed, the gateway answers 503 meanwhile: %s", attempt, exc
            )
            continue
        log.info("started after %d more attempts: the database is back", attempt)
        _settle_memory()
        return


def _settle_memory() -> None:
    """What start-up made (models, search parameters, code lists) lives as
    long as the process: out of the collector's sight, so a full collection
    (measured: 60-80 ms pauses under a document build's allocations) scans
    only what requests make. Only a server's own app: tests build many apps
    in one process."""
    gc.collect()
    gc.freeze()


def _sample_pool(app: Starlette) -> None:
    """The store's connections, as gauges (``gateway_db_pool_connections``)."""
    if not app.state.serving:
        return
    store = app.state.store
    for state, value in store.pool_stats().items():
        metrics.DB_POOL.labels(pool=store.dialect, state=state).set(value)
    reads = getattr(app.state.reader, "pool_stats", None)  # PostgreSQL's async reads
    if reads is not None:
        for state, value in reads().items():
            metrics.DB_POOL.labels(pool=f"{store.dialect}-reads", state=state).set(value)


async def _sampling() -> None:
    """Every few seconds, the gauges a scrape in another worker reads."""
    while True:
        await asyncio.sleep(_SAMPLE_EVERY_S)
        metrics.sample()


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
        app.state.readiness = health.Readiness()
        app.state.metrics_token = health.load_metrics_token(settings.metrics_token_file)
        app.state.serving = False
        app.state.startup_problem = "the gateway is starting"
        starting: asyncio.Task[None] | None = None
        try:
            await _start(app, settings, store)
        except _RETRYABLE as exc:
            if not owned:
                raise  # a store of the caller's: its failure is the caller's
            app.state.startup_problem = str(exc)
            log.error("start-up failed, the gateway answers 503 and tries again: %s", exc)
            starting = asyncio.create_task(_keep_starting(app, settings))
        else:
            if owned:
                _settle_memory()
        forget_sampler = metrics.add_sampler(lambda: _sample_pool(app))
        # Requests holding a per-client slot (gateway.http.limits), read on
        # each sample rather than counted per request.
        forget_in_flight = metrics.add_sampler(
            lambda: metrics.CLIENT_IN_FLIGHT.set(app.state.limiter.in_flight)
        )
        sampling = asyncio.create_task(_sampling())
        try:
            yield
        finally:
            forget_sampler()
            forget_in_flight()
            for task in (starting, sampling):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if app.state.serving:
                await run_in_threadpool(app.state.audit.close)
                await app.state.reader.aclose()
                if owned:
                    await run_in_threadpool(app.state.store.close)

    app = Starlette(
        # The FHIR routes first: the router tries routes in order.
        routes=[
            *ROUTES,
            *oauth.ROUTES,
            *audit.ROUTES,
            *documents.ROUTES,
            *console.ROUTES,
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", health.metrics_endpoint, methods=["GET"]),
        ],
        # Observed outermost: it times and counts what RequestContext answers.
        middleware=[Middleware(health.Observed), Middleware(RequestContext)],
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
    app.state.serving = True  # until a lifespan says otherwise
    app.state.readiness = health.Readiness()
    app.state.metrics_token = None
    # Fairness: per-client limits and failed token requests, per process.
    app.state.limiter = ClientLimiter(Limits.defaults(settings))
    app.state.token_failures = FailureThrottle(
        settings.token_failures_burst, settings.token_failures_per_minute
    )
    if store is not None:
        app.state.store = store
    logs.configure(settings.log_level)
    return app


def app_from_environment() -> Starlette:
    """The uvicorn factory (``--factory``) each worker process calls. A
    worker killed by a signal (SIGBUS: a memory-mapped SQLite -shm file
    that became unwritable) says where, on stderr, before it dies."""
    faulthandler.enable()
    return create_app(Settings.from_env())
