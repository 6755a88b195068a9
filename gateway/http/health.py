"""Operations: liveness (``/healthz``), readiness (``/readyz``), the
Prometheus metrics (``/metrics``) and the middleware that counts every
request and holds requests off while the gateway is still starting.

Readiness is what a load balancer asks before sending a node traffic, so
it answers 200 only when a request could succeed end to end:

- the store takes a write that commits (``Store.check_writable``: a read
  alone passes on a read-only or full SQLite file);
- the audit writer can append: a ticket handed to it (``AuditWriter
  .sequenced``) comes back committed. The ticket runs one of the writer's
  own transactions (moving staged entries into the log, if any) and adds
  no entry: nothing is written into the tamper-evident log for the probe's
  sake, and an audit writer whose thread has stopped, whose commits fail,
  or whose queue does not move in time fails it.

The result is kept for ``_READY_TTL_S`` per worker, and probes that arrive
while a check runs wait for that check, so a load balancer polling often
costs the database one small write a second per worker at most.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics, outcomes
from gateway.errors import GatewayError, Issue, NotFound, StoreUnavailable, Unauthorized
from gateway.http import responses
from gateway.http.middleware import outcome_messages

log = logging.getLogger("gateway")

_READY_TTL_S = 1.0
# A check that takes longer than this fails: a load balancer's probe times out too.
_CHECK_TIMEOUT_S = 3.0
# Paths answered while the gateway is still starting (or waiting for its database).
_ALWAYS = frozenset({"/healthz", "/readyz", "/metrics"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The smallest token /metrics accepts from its file.
_MIN_TOKEN_CHARS = 16


class Readiness:
    """The last readiness check of one worker, kept ``_READY_TTL_S``."""

    def __init__(self) -> None:
        self._checked_at = float("-inf")
        self._failures: list[Issue] = []
        self._running: asyncio.Future[list[Issue]] | None = None

    async def failures(self, app: Any) -> list[Issue]:
        """What stops this worker serving now (empty: ready)."""
        if time.monotonic() - self._checked_at < _READY_TTL_S:
            return self._failures
        if self._running is None:
            self._running = asyncio.ensure_future(self._check(app))
        return await asyncio.shield(self._running)

    async def _check(self, app: Any) -> list[Issue]:
        # Kept from when the check began, not when it ended: a check that
        # began before an outage and ended after it must not answer "ready"
        # for a whole TTL more (a slow check on a loaded machine did).
        began = time.monotonic()
        try:
            failures = await _check(app)
            self._failures, self._checked_at = failures, began
            return failures
        finally:
            self._running = None


async def _check(app: Any) -> list[Issue]:
    state = app.state
    if not getattr(state, "serving", False):
        problem = getattr(state, "startup_problem", None) or "the gateway is starting"
        metrics.READY.labels(check="startup").set(0)
        return [Issue(code="transient", diagnostics=f"startup: {problem}")]
    metrics.READY.labels(check="startup").set(1)
    failures: list[Issue] = []
    try:
        await asyncio.wait_for(run_in_threadpool(state.store.check_writable), _CHECK_TIMEOUT_S)
        metrics.READY.labels(check="store").set(1)
    except Exception as exc:
        metrics.READY.labels(check="store").set(0)
        failures.append(
            Issue(code="transient", diagnostics=f"store: a write cannot commit: {_why(exc)}")
        )
    try:
        await asyncio.wait_for(asyncio.wrap_future(state.audit.sequenced()), _CHECK_TIMEOUT_S)
        metrics.READY.labels(check="audit").set(1)
    except Exception as exc:
        metrics.READY.labels(check="audit").set(0)
        failures.append(
            Issue(code="transient", diagnostics=f"audit: the log cannot append: {_why(exc)}")
        )
    if failures:
        log.warning("not ready: %s", "; ".join(issue.diagnostics for issue in failures))
    return failures


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {_CHECK_TIMEOUT_S:g} s"
    if isinstance(exc, GatewayError):
        return exc.message
    return str(exc) or type(exc).__name__


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Nothing else is checked, so that a
    supervisor never restarts a node for its database's outage."""
    return responses.FhirResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: 200 when the store takes a write and the audit log can
    append; else 503 with an OperationOutcome naming each check failed."""
    failures = await request.app.state.readiness.failures(request.app)
    if not failures:
        return responses.FhirResponse({"status": "ready"})
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": issue.code, "diagnostics": issue.diagnostics}
            for issue in failures
        ],
    }
    return responses.FhirResponse(outcome, status_code=503, headers={"Retry-After": "1"})


def load_metrics_token(path: str | None) -> bytes | None:
    """The bearer token ``/metrics`` wants, from ``GATEWAY_METRICS_TOKEN_FILE``
    (surrounding whitespace ignored); ``None`` when unset: no metrics are
    served. A file that cannot be used stops the gateway at start."""
    if not path:
        return None
    token = Path(path).read_text("utf-8").strip()
    if len(token) < _MIN_TOKEN_CHARS:
        raise ValueError(
            f"GATEWAY_METRICS_TOKEN_FILE {path}: the token must be at least "
            f"{_MIN_TOKEN_CHARS} characters"
        )
    return token.encode()


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text exposition, to a scraper presenting the token of
    ``GATEWAY_METRICS_TOKEN_FILE``. Unconfigured, there is no endpoint (404,
    as for any path); a wrong or missing token is 401."""
    wanted: bytes | None = request.app.state.metrics_token
    if wanted is None:
        raise NotFound(f"there is no endpoint at {request.url.path}", code="GW-0404")
    presented = request.headers.get("authorization", "")
    scheme, _, token = presented.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), wanted):
        raise Unauthorized(
            "the metrics need the bearer token of GATEWAY_METRICS_TOKEN_FILE", code="GW-0401"
        )
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)


class Observed:
    """Outermost middleware: counts each request by method, route template
    and status, and times it (``gateway.metrics``); and, until the gateway
    has started (its database reached), answers every path but the health
    ones 503 (``StoreUnavailable``), so a worker waiting for its database
    stays up and says so.

    The route template is the matched route's pattern
    (``/fhir/{res_type:restype}/{res_id:fhirid}``), never the path: no id
    reaches a label. What matched no route is ``unmatched``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["app"].state.serving or scope["path"] in _ALWAYS:
                await self.app(scope, receive, send_status)
            else:
                await _starting(scope, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            key = (method, template, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    metrics.HTTP_REQUESTS.labels(method, template, str(status)),
                    metrics.HTTP_LATENCY.labels(method, template),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
            if status == 503 and scope["path"] not in _ALWAYS:
                metrics.STORE_UNAVAILABLE.inc()


async def _starting(scope: Scope, send: Send) -> None:
    problem = getattr(scope["app"].state, "startup_problem", None) or "the gateway is starting"
    refusal = StoreUnavailable(
        f"the gateway is not serving yet: {problem}; try again shortly", code="GW-0503"
    )
    start, body = outcome_messages(503, outcomes.operation_outcome(refusal))
    start["headers"].append((b"retry-after", b"1"))
    await send(start)
    await send(body)
