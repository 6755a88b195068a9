"""Settings, read once from the environment by the app factory (never module
globals, so tests build apps with settings of their own)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_DATABASE_URL = "sqlite:///var/gateway.db"
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Public base of the FHIR API (https://gateway.example/fhir); derived from
    # each request when unset.
    base_url: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    # The longest URL (path and query) and the most header bytes (names and
    # values) a request may have: answered 414 and 431 before routing. A
    # search too long for a URL is sent as POST [type]/_search.
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    # The shape of a JSON body (``gateway.http.bodies``): how deeply it may
    # nest, how many values it may hold, how many entries a Bundle may
    # have. Over any, a 4xx names the limit before any work is done.
    max_json_depth: int = 128
    max_json_values: int = 100_000
    max_bundle_entries: int = 1000
    # The form body of POST [type]/_search: a search's parameters, which
    # need more room than a URL's but never a resource's.
    max_search_form_bytes: int = 64 * 1024
    # Lifetime of the access tokens the gateway issues, in seconds.
    token_lifetime_s: int = 300
    # Fairness (``gateway.http.limits``, docs/limits.md): each client's
    # requests in flight at once and requests a second (sustained, and in
    # a burst) in each worker process, unless its registration sets its
    # own (``gateway clients limits``); 0 is no limit. Enough that a client
    # using the gateway as intended never meets them, few enough that one
    # client cannot hold every thread and database connection of a worker
    # (40 threads, GATEWAY_DB_POOL_SIZE connections).
    client_concurrency: int = 8
    client_rate: float = 500.0
    client_burst: int = 1000
    # Failed token requests (a bad assertion, an unknown client) allowed
    # per source address and claimed client id, as a burst and then per
    # minute; five times as many per source address whatever the client.
    token_failures_burst: int = 10
    token_failures_per_minute: float = 10.0
    # The work one authenticated request may do (``gateway.store.budget``):
    # wall time in milliseconds, and rows read from the database. Far
    # beyond what searches, $everything and documents read and take at the
    # demo's scale; a request past either ends 422 too-costly, nothing of
    # it written. 0 is no budget.
    work_budget_ms: int = 30_000
    work_budget_rows: int = 200_000
    log_level: str = "INFO"
    # PostgreSQL connections per worker process.
    db_pool_size: int = 16
    # A file of restricted-data code lists to use instead of the shipped
    # ones (consent/data/restricted-codes.json shows the shape).
    restricted_codes: str | None = None
    # The audit log's Ed25519 signing key (PEM), made there on first start;
    # by default next to a SQLite database, else var/audit-key.pem.
    audit_key: str | None = None
    # Seconds between signed audit checkpoints (one is also signed on shutdown).
    audit_checkpoint_s: float = 10.0
    # The Ed25519 key (PEM) that signs the FHIR documents the gateway builds,
    # made there on first start; by default next to a SQLite database, else
    # var/document-key.pem. Its public key is served at /documents/jwks.json.
    document_key: str | None = None
    # Milliseconds after its arrival before a 404, or an answer that found
    # nothing to show, leaves: finding a record and deciding it is hidden
    # takes longer than finding nothing, and the time to answer must not
    # tell the two apart (PRODUCT.md section 4).
    not_found_floor_ms: int = 50
    # Notifications (``gateway.delivery``): whether the background process
    # ``gateway serve`` starts delivers notifications (one of a deployment's
    # works at a time, whichever holds the lease; it runs bulk exports
    # either way); failures in a row before a Subscription goes to
    # error; whether rest-hook endpoints on the gateway's own host may be
    # called (a local receiver, as the demo's: never in production).
    notify: bool = True
    notify_max_failures: int = 10
    notify_allow_loopback: bool = False
    # Bulk export (``gateway.export``): the folder its files are written in
    # (one folder per export), and how long a completed export's files are
    # kept before they are deleted and its links answer 404.
    export_dir: str = os.path.join("var", "exports")
    export_expiry_s: int = 24 * 3600

    # A file holding the bearer token a Prometheus scraper presents to
    # /metrics; unset, /metrics answers 404 (docs/operations.md).
    metrics_token_file: str | None = None

    def audit_key_path(self) -> str:
        return self.audit_key or self._beside_database("audit-key.pem")

    def document_key_path(self) -> str:
        return self.document_key or self._beside_database("document-key.pem")

    def _beside_database(self, name: str) -> str:
        """``name`` in the SQLite database's directory, else in ``var/``."""
        if self.database_url.startswith("sqlite:///"):
            database = self.database_url.removeprefix("sqlite:///")
            return os.path.join(os.path.dirname(database) or ".", name)
        return os.path.join("var", name)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base_url = env.get("GATEWAY_BASE_URL") or None
        return cls(
            database_url=env.get("GATEWAY_DATABASE_URL") or DEFAULT_DATABASE_URL,
            base_url=base_url.rstrip("/") if base_url else None,
            max_body_bytes=int(env.get("GATEWAY_MAX_BODY_BYTES") or cls.max_body_bytes),
            max_url_bytes=int(env.get("GATEWAY_MAX_URL_BYTES") or cls.max_url_bytes),
            max_header_bytes=int(env.get("GATEWAY_MAX_HEADER_BYTES") or cls.max_header_bytes),
            max_json_depth=int(env.get("GATEWAY_MAX_JSON_DEPTH") or cls.max_json_depth),
            max_json_values=int(env.get("GATEWAY_MAX_JSON_VALUES") or cls.max_json_values),
            max_bundle_entries=int(env.get("GATEWAY_MAX_BUNDLE_ENTRIES") or cls.max_bundle_entries),
            max_search_form_bytes=int(
                env.get("GATEWAY_MAX_SEARCH_FORM_BYTES") or cls.max_search_form_bytes
            ),
            token_lifetime_s=int(env.get("GATEWAY_TOKEN_LIFETIME") or cls.token_lifetime_s),
            client_concurrency=_number(
                env.get("GATEWAY_CLIENT_CONCURRENCY"), cls.client_concurrency, int
            ),
            client_rate=_number(env.get("GATEWAY_CLIENT_RATE"), cls.client_rate, float),
            client_burst=_number(env.get("GATEWAY_CLIENT_BURST"), cls.client_burst, int),
            token_failures_burst=_number(
                env.get("GATEWAY_TOKEN_FAILURES_BURST"), cls.token_failures_burst, int
            ),
            token_failures_per_minute=_number(
                env.get("GATEWAY_TOKEN_FAILURES_PER_MINUTE"), cls.token_failures_per_minute, float
            ),
            work_budget_ms=_number(env.get("GATEWAY_WORK_BUDGET_MS"), cls.work_budget_ms, int),
            work_budget_rows=_number(
                env.get("GATEWAY_WORK_BUDGET_ROWS"), cls.work_budget_rows, int
            ),
            log_level=(env.get("GATEWAY_LOG_LEVEL") or "INFO").upper(),
            db_pool_size=int(env.get("GATEWAY_DB_POOL_SIZE") or cls.db_pool_size),
            restricted_codes=env.get("GATEWAY_RESTRICTED_CODES") or None,
            audit_key=env.get("GATEWAY_AUDIT_KEY") or None,
            audit_checkpoint_s=float(
                env.get("GATEWAY_AUDIT_CHECKPOINT_SECONDS") or cls.audit_checkpoint_s
            ),
            document_key=env.get("GATEWAY_DOCUMENT_KEY") or None,
            not_found_floor_ms=int(env.get("GATEWAY_NOT_FOUND_FLOOR_MS") or cls.not_found_floor_ms),
            notify=_flag(env.get("GATEWAY_NOTIFY"), cls.notify),
            notify_max_failures=int(
                env.get("GATEWAY_NOTIFY_MAX_FAILURES") or cls.notify_max_failures
            ),
            notify_allow_loopback=_flag(
                env.get("GATEWAY_NOTIFY_ALLOW_LOOPBACK"), cls.notify_allow_loopback
            ),
            export_dir=env.get("GATEWAY_EXPORT_DIR") or cls.export_dir,
            export_expiry_s=int(env.get("GATEWAY_EXPORT_EXPIRY") or cls.export_expiry_s),
            metrics_token_file=env.get("GATEWAY_METRICS_TOKEN_FILE") or None,
        )


def _number(value: str | None, default: _N, kind: type[_N]) -> _N:
    """A number setting: unset or empty is the default; 0 is kept (it
    means no limit for the limits that take it)."""
    if value is None or not value.strip():
        return default
    return kind(value)


def _flag(value: str | None, default: bool) -> bool:
    """An on/off setting: 1, true, yes or on; 0, false, no or off."""
    if not value:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
