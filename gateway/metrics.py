"""The gateway's Prometheus metrics: module-level instruments any module may
count on, and the text ``/metrics`` serves.

To count an event of your own, import the instrument and use it::

    from gateway import metrics

    metrics.LIMITS_REFUSED.labels(limit="max-url-bytes").inc()

or add one here, beside the others, so every metric of the gateway is in one
list (docs/operations.md lists them). Rules for every instrument:

- **Labels are small fixed vocabularies**: a route template, a status, a
  consent rule id, a limit's name. Never a resource id, a patient, a client
  id, a token, a raw path or a query: labels are stored for ever, and a
  label per patient would both leak who is on file and grow without bound.
- **Counting costs microseconds**: ``labels(...)`` looks its child up in a
  dict each call; a hot path keeps the child it uses (``LIMITS_REFUSED
  .labels(limit="x")`` once, at import) and calls ``inc()`` on it.

Across worker processes (``gateway serve --workers N``): the serve command
gives the run a folder of its own in ``PROMETHEUS_MULTIPROC_DIR`` before it
starts the workers, and prometheus_client's multiprocess mode keeps each
process's values in a memory-mapped file there; ``exposition`` adds them
up (gauges summed over live processes). With one worker (no folder) the
process's own registry is served.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Request latency: a cached read takes a fraction of a millisecond, a
# document or a large transaction seconds; the audit's fail-closed wait is 30 s.
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# -- HTTP -------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by method, route template (never the raw path) and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)

# -- Audit log --------------------------------------------------------------

AUDIT_QUEUE = Gauge(
    "gateway_audit_queue_depth",
    "Audit entries and write tickets waiting for the audit writer's next commit",
    multiprocess_mode="livesum",
)
AUDIT_COMMIT = Histogram(
    "gateway_audit_commit_seconds",
    "Time of one audit writer group commit (entries appended, staged entries moved)",
    buckets=_LATENCY_BUCKETS,
)
AUDIT_COMMITS = Counter(
    "gateway_audit_commits_total",
    "Audit writer group commits, by outcome (ok or failed)",
    ["outcome"],
)
AUDIT_ENTRIES = Counter(
    "gateway_audit_entries_total", "Audit entries appended to the log by the audit writer"
)

# -- Consent ----------------------------------------------------------------

CONSENT_DECISIONS = Counter(
    "gateway_consent_decisions_total",
    "Consent decisions made, by the rule that decided (consent.engine) and the decision",
    ["rule", "decision"],
)

# -- Store ------------------------------------------------------------------

DB_POOL = Gauge(
    "gateway_db_pool_connections",
    "Database connections per state: size (open), in_use, waiting (requests queued "
    "for one; PostgreSQL) and max (the pool's ceiling)",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
READY = Gauge(
    "gateway_ready",
    "1 when the last readiness check of this check passed, else 0 (per worker, summed)",
    ["check"],
    multiprocess_mode="livesum",
)
STORE_UNAVAILABLE = Counter(
    "gateway_store_unavailable_total",
    "Requests answered 503 because the database could not be used (health probes aside)",
)

# -- Limits (issue 30's fairness work counts here) ---------------------------

LIMITS_REFUSED = Counter(
    "gateway_limits_refused_total",
    "Requests refused by a limit, by the limit's name (e.g. max-url-bytes, "
    "client-concurrency, client-rate, work-budget)",
    ["limit"],
)

CLIENT_IN_FLIGHT = Gauge(
    "gateway_client_requests_in_flight",
    "Authenticated requests holding a per-client concurrency slot now, every client's "
    "(gateway.http.limits; per worker, summed)",
    multiprocess_mode="livesum",
)

# Sampled by each worker every few seconds and before it serves a scrape
# (``sample``): gauges whose value lives elsewhere (a pool's statistics).
_samplers: list[Callable[[], None]] = []


def add_sampler(sampler: Callable[[], None]) -> Callable[[], None]:
    """Run ``sampler`` (which sets gauges) on every ``sample``; returns a
    function that removes it again."""
    _samplers.append(sampler)
    return lambda: _samplers.remove(sampler) if sampler in _samplers else None


def sample() -> None:
    """Run every sampler; one that fails is skipped (a metric is never
    worth a failure)."""
    for sampler in list(_samplers):
        try:
            sampler()
        except Exception:  # a gauge left as it was
            continue


def multiprocess_dir() -> str | None:
    """The run's folder of per-process values, if workers share one."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """Every metric in Prometheus' text format: this process's, or, with a
    multiprocess folder, those of every process of the run."""
    sample()
    folder = multiprocess_dir()
    if folder is None:
        return generate_latest(REGISTRY)
    _forget_dead_processes(folder)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _forget_dead_processes(folder: str) -> None:
    """Drop the live gauges of worker processes that have died (a worker
    the server replaced): uvicorn's supervisor tells no one, and a dead
    worker's pool would otherwise be counted for ever. Its counters stay."""
    for name in os.listdir(folder):
        if not name.startswith("gauge_live"):
            continue
        pid_text = name.rsplit("_", 1)[-1].removesuffix(".db")
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:
            continue
