"""ASGI middleware: request ids, the access log, the audit entry each
authenticated request must have written before its response leaves, the
answer to an unexpected error, and the limits on a request's size (its URL
and headers before routing, its body as it is read).

Written as plain ASGI rather than Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request on the hot read path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import fhirjson, logs, outcomes
from gateway.audit.events import request_event, subtype_of
from gateway.errors import (
    AuditFailure,
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    PayloadTooLarge,
    UriTooLong,
)

# A request waits at most this long for its audit entry, then fails closed.
_AUDIT_TIMEOUT_S = 30.0
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = logging.getLogger("gateway")


class RequestContext:
    """Gives each request an id (the client's ``X-Request-Id`` if sane), echoes
    it on the response and logs one JSON line per request.

    An exception that escapes the app (a bug: every ``GatewayError`` has been
    answered inside it) is answered here, as the GW-0500 OperationOutcome, so
    that its 500 leaves as every other response does: with the request id,
    and, for an authenticated request, after its audit entry (outcome 8,
    serious failure). Starlette's own last-resort handler sits outside this
    middleware and would send it with neither.

    A request over the size limits (``refused``) is answered here, before
    it is routed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    rid = candidate
                break
        rid = rid or os.urandom(16).hex()  # as random as uuid4, a fifth of the cost
        token = logs.request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        held: list[Message] | None = None  # an audited response, until its entry is written
        begun = False  # whether any of the response has gone to the server

        async def forward(message: Message) -> None:
            nonlocal begun
            begun = True
            await send(message)

        async def send_with_id(message: Message) -> None:
            nonlocal status, held
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
                if "audit" in scope["state"]:
                    held = [message]
                    return
            elif held is not None:
                held.append(message)
                if message.get("more_body"):
                    return
                messages, held = held, None
                status = await audited(scope, rid, status, messages, forward, started)
                return
            await forward(message)

        try:
            try:
                refusal = refused(scope)
                if refusal is None:
                    await self.app(scope, receive, send_with_id)
                else:
                    for message in outcome_messages(
                        outcomes.status_of(refusal), outcomes.operation_outcome(refusal)
                    ):
                        await send_with_id(message)
            except Exception:
                if begun:
                    raise  # too late for an answer: the server cuts the response off
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                held = None  # what the app had begun to answer, if anything, is not sent
                for message in outcome_messages(500, outcomes.unexpected()):
                    await send_with_id(message)
        finally:
            # A per-client slot taken by ``deps.authenticated``, given back
            # however the request ended (``gateway.http.limits``).
            slot = scope["state"].pop("client_slot", None)
            if slot is not None:
                slot[0].release(slot[1])
            logs.access_log.write(
                scope["method"],
                scope["path"],
                status,
                round((time.perf_counter() - started) * 1000, 3),
            )
            logs.request_id.reset(token)


def refused(scope: Scope) -> GatewayError | None:
    """Why a request is refused before it is routed, if it is: a URL or
    headers longer than the settings allow, or a NUL in its path or query
    (no FHIR value holds one, and PostgreSQL text cannot)."""
    settings = scope["app"].state.settings
    query: bytes = scope.get("query_string", b"")
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    url = len(path) + (len(query) + 1 if query else 0)
    if url > settings.max_url_bytes:
        return UriTooLong(
            f"the URL is {url} bytes long; this server takes at most "
            f"{settings.max_url_bytes} (send a long search as POST [type]/_search, "
            "its parameters in the body)",
            code="GW-0304",
        )
    headers = sum(len(name) + len(value) for name, value in scope["headers"])
    if headers > settings.max_header_bytes:
        return HeadersTooLarge(
            f"the request's headers are {headers} bytes long; this server takes at most "
            f"{settings.max_header_bytes}",
            code="GW-0305",
        )
    if b"%00" in query or "\x00" in scope["path"]:
        return InvalidRequest(
            "the URL holds a NUL character (%00), which no path or parameter value may hold",
            code="GW-0306",
        )
    return None


async def audited(
    scope: Scope, rid: str, status: int, messages: list[Message], send: Send, started: float
) -> int:
    """Send an audited response once its audit entry is durable; if the
    entry cannot be written, send a 500 instead (fail closed: no entry, no
    data). An answer that found nothing (a 404, an empty search page)
    waits, besides, until the not-found floor has passed since the request
    arrived (``started``, ``time.perf_counter``). The status sent."""
    asker, disclosures = scope["state"]["audit"]
    # A write's entry is staged in the write's own transaction; the request
    # needs one of its own only for what it did besides, or for a failure.
    if disclosures.pending or not disclosures.logged_entries or status >= 400:
        endpoint = scope.get("endpoint")
        record = request_event(
            recorded=fhirjson.instant(),
            subtype=disclosures.interaction or subtype_of(getattr(endpoint, "__name__", "")),
            status=status,
            asker=asker,
            request_id=rid,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            disclosures=disclosures,
        )
        try:
            await asyncio.wait_for(
                asyncio.wrap_future(scope["app"].state.audit.submit([record])), _AUDIT_TIMEOUT_S
            )
        except Exception as exc:  # AuditUnavailable, or no audit log at all
            # The database unusable (or the log's writer not answering): as
            # unavailable, 503, like the request's own failure would be.
            unavailable = getattr(exc, "transient", False) or isinstance(exc, TimeoutError)
            why = f"the audit entry could not be written, so nothing is returned: {exc}"
            failure = (
                AuditFailure(why, code="GW-0503", issue_type="transient")
                if unavailable
                else AuditFailure(why)
            )
            start, body = outcome_messages(
                503 if unavailable else 500, outcomes.operation_outcome(failure)
            )
            start["headers"].append((b"x-request-id", rid.encode("latin-1")))
            await send(start)
            await send(body)
            return int(start["status"])
    else:
        await _sequenced(scope)
    if status == 404 or disclosures.found_nothing:
        await _not_found_floor(scope, started)
    for message in messages:
        await send(message)
    return status


async def _sequenced(scope: Scope) -> None:
    """Wait until the entry a write staged with its data is in the log
    (``gateway.audit.staging``), so the answer leaves with it there. If it
    cannot be moved now the answer still leaves: the entry is committed
    with the write, and the audit writer moves it when the log can take it
    (at the latest on the next start)."""
    try:
        await asyncio.wait_for(
            asyncio.wrap_future(scope["app"].state.audit.sequenced()), _AUDIT_TIMEOUT_S
        )
    except Exception as exc:
        log.warning("a write's staged audit entry is not yet in the log: %s", exc)


def outcome_messages(status: int, outcome: dict[str, Any]) -> list[Message]:
    """An OperationOutcome as the two ASGI messages that send it."""
    body = fhirjson.dumps(outcome)
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


async def _not_found_floor(scope: Scope, started: float) -> None:
    """Hold an answer that shows nothing until ``Settings.not_found_floor_ms``
    after the request arrived. A record the requester may not see is read
    and decided before it is refused, one that does not exist is not, and
    the difference (a read of the person's relationships, a consent
    decision: about a millisecond a record) would otherwise tell a prober
    which ids exist, or that a person has records of a kind. Every
    authenticated 404 passes here (reads, vreads, history, operations on an
    instance, updates and deletes of what is hidden), as does every search
    or history page with nothing in it and every batch with an entry
    answered 404."""
    floor_s = scope["app"].state.settings.not_found_floor_ms / 1000
    remaining = started + floor_s - time.perf_counter()
    if remaining > 0:
        await asyncio.sleep(remaining)


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refusing anything over ``limit`` bytes before
    reading it when Content-Length says so, and while reading it otherwise."""
    declared = headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}", code="GW-0413")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", code="GW-0413")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
