"""The audit log over HTTP: its public key and latest checkpoint for anyone
(as a Certificate Transparency log publishes its tree heads), and for
auditors (purpose HCOMPL) its entries and the inclusion and consistency
proofs a third party checks with the public key alone."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import fhirjson
from gateway.access.purposes import require_compliance
from gateway.audit import log, merkle, reviews
from gateway.audit.query import find as find_entries
from gateway.audit.query import parse_audit_query
from gateway.audit.report import summarise
from gateway.errors import InvalidRequest, NotFound
from gateway.http import bodies, responses
from gateway.http.bodies import BodyLimits
from gateway.http.deps import FhirContext, authenticated
from gateway.http.middleware import read_body
from gateway.integers import MAX_BIGINT, whole_number
from gateway.store import Store


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _require_auditor(context: FhirContext) -> None:
    require_compliance(context.who, "the audit log's entries and proofs")


async def _auditor(request: Request) -> FhirContext:
    context = await authenticated(request)
    _require_auditor(context)
    return context


def _number(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    number = None if raw is None else whole_number(raw)
    if number is None:
        raise InvalidRequest(
            f"{name!r} must be given as a whole number from 0 to {MAX_BIGINT}"
            + ("" if raw is None else f", not {raw!r}"),
            code="GW-0901",
        )
    return number


def _index(request: Request) -> int | None:
    """The log index in the path (``{index:int}``: digits), or ``None`` for
    one past any the log can hold."""
    index: int = request.path_params["index"]
    return index if index <= MAX_BIGINT else None


async def public_key(request: Request) -> Response:
    return PlainTextResponse(request.app.state.audit_signer.verifier_key() + "\n")


async def latest_checkpoint(request: Request) -> Response:
    store: Store = request.app.state.store
    signed = await run_in_threadpool(log.checkpoints, store)
    if not signed:
        raise NotFound("no checkpoint has been signed yet", code="GW-0902")
    return PlainTextResponse(signed[-1][2])


async def entry(request: Request) -> Response:
    context = await _auditor(request)
    index = _index(request)
    found = None if index is None else await run_in_threadpool(log.entry, context.store, index)
    if found is None:
        raise NotFound(f"the audit log has no entry {request.path_params['index']}", code="GW-0903")
    return responses.PlainJsonResponse(fhirjson.loads(found))


async def inclusion(request: Request) -> Response:
    context = await _auditor(request)
    index, size = _number(request, "index"), _number(request, "size")

    def prove() -> dict[str, object]:
        try:
            proof = log.inclusion_proof(context.store, index, size)
            _, root = log.tree_head(context.store, size)
        except ValueError as exc:
            raise InvalidRequest(str(exc), code="GW-0904") from None
        found = log.entry(context.store, index)
        assert found is not None
        return {
            "index": index,
            "size": size,
            "leafHash": _b64(merkle.leaf_hash(found)),
            "root": _b64(root),
            "proof": [_b64(p) for p in proof],
        }

    return responses.PlainJsonResponse(await run_in_threadpool(prove))


async def consistency(request: Request) -> Response:
    context = await _auditor(request)
    old, new = _number(request, "old"), _number(request, "new")

    def prove() -> dict[str, object]:
        try:
            proof = log.consistency_proof(context.store, old, new)
            _, old_root = log.tree_head(context.store, old)
            _, new_root = log.tree_head(context.store, new)
        except ValueError as exc:
            raise InvalidRequest(str(exc), code="GW-0904") from None
        return {
            "old": old,
            "new": new,
            "oldRoot": _b64(old_root),
            "newRoot": _b64(new_root),
            "proof": [_b64(p) for p in proof],
        }

    return responses.PlainJsonResponse(await run_in_threadpool(prove))


def _as_resource(index: int, entry: bytes) -> dict[str, object]:
    """A logged entry as the AuditEvent resource the API shows: its log
    index is its id."""
    event: dict[str, object] = fhirjson.loads(entry)
    return {"resourceType": "AuditEvent", "id": str(index), **event}


async def search_events(request: Request, context: FhirContext) -> Response:
    """``GET /fhir/AuditEvent?...``: the log, filtered, newest first, paged
    (auditors under HCOMPL only)."""
    _require_auditor(context)
    params = list(request.query_params.multi_items())
    query = parse_audit_query(params)
    page, cursor = await run_in_threadpool(find_entries, context.store, query)
    kept = [(n, v) for n, v in params if n not in ("_cursor", "_format")]
    base = f"{context.base_url}/AuditEvent"

    def link(relation: str, extra: list[tuple[str, str]]) -> dict[str, str]:
        every = kept + extra
        return {"relation": relation, "url": f"{base}?{urlencode(every)}" if every else base}

    links = [link("self", [("_cursor", str(query.before))] if query.before is not None else [])]
    if cursor is not None:
        links.append(link("next", [("_cursor", str(cursor))]))
    return responses.bundle(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{index}",
                    "resource": _as_resource(index, entry),
                    "search": {"mode": "match"},
                }
                for index, entry in page
            ],
        }
    )


async def read_event(context: FhirContext, res_id: str) -> Response:
    """``GET /fhir/AuditEvent/[id]``: one logged entry (auditors only)."""
    _require_auditor(context)
    index = whole_number(res_id)
    found = None if index is None else await run_in_threadpool(log.entry, context.store, index)
    if index is None or found is None:
        raise NotFound(f"AuditEvent/{res_id} is not known", code="GW-0410")
    return responses.FhirResponse(_as_resource(index, found))


async def review_queue(request: Request) -> Response:
    """``GET /audit/reviews``: emergency accesses waiting for review, oldest first."""
    context = await _auditor(request)
    waiting = await run_in_threadpool(reviews.pending, context.store)
    items = []
    for item in waiting:
        flat = summarise(item.event)
        items.append(
            {
                "index": item.index,
                "recorded": flat["when"],
                "organization": flat["organization"],
                "organizationName": flat["organizationName"],
                "client": flat["client"],
                "interaction": flat["interaction"],
                "patients": list(item.patients),
                "reason": flat["breakGlassReason"],
                "why": item.why,
            }
        )
    return responses.PlainJsonResponse({"pending": items})


async def mark_reviewed(request: Request) -> Response:
    """``POST /audit/reviews/{index}`` with ``{"note": ...}``: the privacy
    officer's review of one emergency access, itself written to the log."""
    context = await _auditor(request)
    raw = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    body = bodies.parse(raw or b"{}", BodyLimits.of(context.settings))
    note = body.get("note") if isinstance(body, dict) else None
    if not isinstance(note, str):
        raise InvalidRequest('send {"note": "..."}', code="GW-0920")
    asker, _ = request.scope["state"]["audit"]
    index = _index(request)
    if index is None:
        raise NotFound(
            f"entry {request.path_params['index']} is not waiting for review", code="GW-0921"
        )
    review_index = await run_in_threadpool(
        reviews.review,
        context.store,
        index,
        asker,
        note,
        request.scope["state"].get("request_id", ""),
    )
    return responses.PlainJsonResponse({"reviewed": index, "reviewEntry": review_index})


ROUTES: list[BaseRoute] = [
    Route("/audit/public-key", public_key, methods=["GET"]),
    Route("/audit/checkpoint", latest_checkpoint, methods=["GET"]),
    Route("/audit/entries/{index:int}", entry, methods=["GET"]),
    Route("/audit/proof/inclusion", inclusion, methods=["GET"]),
    Route("/audit/proof/consistency", consistency, methods=["GET"]),
    Route("/audit/reviews", review_queue, methods=["GET"]),
    Route("/audit/reviews/{index:int}", mark_reviewed, methods=["POST"]),
]
