"""Fairness: per-client limits on requests in flight and requests a second,
and a bound on failed token requests.

**Per client** (``ClientLimiter``), checked by ``deps.authenticated`` once
the token is verified and the client's registration read (from the cache:
no statement), before the request's work begins:

- *concurrency*: requests of the client in flight in this worker process
  at once. A request holds its slot until its answer has been sent (or it
  failed, or its client went away): ``RequestContext``, the outermost
  middleware, releases it in its ``finally``.
- *rate*: a token bucket, ``rate`` requests a second sustained with bursts
  of up to ``burst``.

Over either, the request is refused at once (not queued) with 429, a
``Retry-After`` and an OperationOutcome naming the limit and its value; the
refusal is audited like every refusal after authentication. A client's
limits are those of its registration (``ClientRegistration.limits``, set
with ``gateway clients limits``), each unset one the deployment's default
(``Settings.client_*``); 0 is no limit.

**Per process, not shared.** Each worker process keeps its own counts, on
its event loop (no lock, no statement: under a microsecond a
request). The limits are therefore per worker: with ``--workers N`` a
client may have up to N times its concurrency in flight on a node and send
up to N times its rate, when its connections spread over the workers; with
several nodes, that again on each node. Nothing is ever refused below the
configured figures, which is what a well-behaved client is promised; a
deployment-wide ceiling belongs to the load balancer in front, or would
need counts shared through the database, a statement per request the hot
path cannot afford. The concurrency limit protects what is per process in
any case: a worker's threads and its database connections.

**Token endpoint** (``FailureThrottle``): it is unauthenticated, and each
request costs a signature check. Failed requests are counted per source
address and per (source address, claimed client id); while either bucket
is empty every token request from there (for that client) is refused
with 429 before any work. Successful requests cost nothing here. Behind a
reverse proxy the source address is the proxy's unless uvicorn is told to
trust its ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.config import Settings
from gateway.errors import TooManyRequests

if TYPE_CHECKING:
    from gateway.auth.clients import ClientRegistration

_CONCURRENCY_REFUSED = metrics.LIMITS_REFUSED.labels(limit="client-concurrency")
_RATE_REFUSED = metrics.LIMITS_REFUSED.labels(limit="client-rate")
_TOKEN_REFUSED = metrics.LIMITS_REFUSED.labels(limit="token-failures")


@dataclass(frozen=True, slots=True)
class Limits:
    """A client's limits in one worker process; 0 is no limit."""

    concurrency: int
    rate: float  # requests a second, sustained
    burst: int  # requests at once above the sustained rate (the bucket's size)

    @classmethod
    def defaults(cls, settings: Settings) -> Limits:
        return cls(settings.client_concurrency, settings.client_rate, settings.client_burst)


class ClientState:
    """One client's counts in this process."""

    __slots__ = ("at", "in_flight", "limits", "registration", "tokens")

    def __init__(self, registration: ClientRegistration, limits: Limits, now: float) -> None:
        self.registration = registration
        self.limits = limits
        self.in_flight = 0
        self.tokens = float(max(limits.burst, 1))
        self.at = now


class ClientLimiter:
    """Per-client limits of one worker process. Used on its event loop
    only (``admit`` and ``release`` never run at once), so it takes no lock."""

    def __init__(self, defaults: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self._defaults = defaults
        self._clock = clock
        self._clients: dict[str, ClientState] = {}
        self.in_flight = 0  # every client's, for the metrics

    def limits_of(self, client: ClientRegistration) -> Limits:
        """``client``'s limits: its registration's, else the defaults."""
        own, defaults = client.limits, self._defaults
        return Limits(
            concurrency=defaults.concurrency if own.concurrency is None else own.concurrency,
            rate=defaults.rate if own.rate is None else own.rate,
            burst=defaults.burst if own.burst is None else own.burst,
        )

    def admit(self, client: ClientRegistration) -> ClientState:
        """Take a slot for a request of ``client``, or refuse it (429).
        The caller must ``release`` what it is given, whatever happens."""
        state = self._clients.get(client.client_id)
        if state is None:
            state = ClientState(client, self.limits_of(client), self._clock())
            self._clients[client.client_id] = state
        elif state.registration is not client:
            # The registration changed (or was read again): its limits may have.
            state.registration = client
            state.limits = self.limits_of(client)
        limits = state.limits
        if limits.concurrency and state.in_flight >= limits.concurrency:
            _CONCURRENCY_REFUSED.inc()
            raise TooManyRequests(
                f"client {client.client_id!r} already has {state.in_flight} requests in "
                f"progress, its limit (concurrency {limits.concurrency} per worker process); "
                "send this one when one of them has been answered",
                code="GW-0429",
                retry_after=1,
            )
        rate = limits.rate
        if rate:
            now = self._clock()
            tokens = state.tokens + (now - state.at) * rate
            burst = limits.burst if limits.burst > 1 else 1
            if tokens > burst:
                tokens = burst
            state.at = now
            if tokens < 1:
                state.tokens = tokens
                _RATE_REFUSED.inc()
                raise TooManyRequests(
                    f"client {client.client_id!r} is over its request rate (rate "
                    f"{rate:g} a second with bursts of {burst}, per worker process)",
                    code="GW-0430",
                    retry_after=max(1, math.ceil((1 - tokens) / rate)),
                )
            state.tokens = tokens - 1
        state.in_flight += 1
        self.in_flight += 1
        return state

    def release(self, state: ClientState) -> None:
        """Give back a slot ``admit`` gave."""
        state.in_flight -= 1
        self.in_flight -= 1


class FailureThrottle:
    """Failed token requests, per source address and per (source address,
    client id) as token buckets: each failure takes a token, ``rate`` a
    second come back, up to ``burst``. Refused while either is empty.
    Keeps at most ``capacity`` buckets (the oldest go first); a bucket
    exists only once something failed. Used on the event loop only."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        source_factor: int = 5,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._rate = per_minute / 60
        self._factor = source_factor
        self._capacity = capacity
        self._clock = clock
        # key -> (tokens, at)
        self._buckets: dict[tuple[str, str | None], tuple[float, float]] = {}

    def _level(self, key: tuple[str, str | None], burst: int, rate: float, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return float(burst)
        tokens, at = found
        return min(float(burst), tokens + (now - at) * rate)

    def refused(self, source: str, client_id: str | None) -> int | None:
        """Seconds to wait, if requests from ``source`` for ``client_id`` are
        refused now; ``None`` if they may go ahead."""
        if self._burst <= 0 or self._rate <= 0:
            return None
        now = self._clock()
        keys = (
            ((source, None), self._burst * self._factor, self._rate * self._factor),
            ((source, client_id), self._burst, self._rate),
        )
        wait = 0.0
        for key, burst, rate in keys:
            tokens = self._level(key, burst, rate, now)
            if tokens < 1:
                wait = max(wait, (1 - tokens) / rate)
        if wait <= 0:
            return None
        _TOKEN_REFUSED.inc()
        return max(1, math.ceil(wait))

    def failed(self, source: str, client_id: str | None) -> None:
        """Count one failed request from ``source`` for ``client_id``."""
        if self._burst <= 0 or self._rate <= 0:
            return
        now = self._clock()
        for key, burst, rate in (
            ((source, None), self._burst * self._factor, self._rate * self._factor),
            ((source, client_id), self._burst, self._rate),
        ):
            tokens = self._level(key, burst, rate, now)
            self._buckets.pop(key, None)  # to the end: the most recent
            self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > self._capacity:
            del self._buckets[next(iter(self._buckets))]
