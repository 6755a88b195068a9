"""The audit log over HTTP: its public key and latest checkpoint for anyone
(as a Certificate Transparency log publishes its tree heads), and for
auditors (purpose HCOMPL) its entries and the inclusion and consistency
proofs a third party checks with the public key alone."""

from __future__ import annotations

import base64

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import fhirjson
from gateway.audit import log, merkle
from gateway.auth.tokens import Purpose
from gateway.errors import Forbidden, InvalidRequest, NotFound
from gateway.http import responses
from gateway.http.deps import FhirContext, authenticated
from gateway.store import Store


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


async def _auditor(request: Request) -> FhirContext:
    context = await authenticated(request)
    if context.who.purpose is not Purpose.HCOMPL:
        raise Forbidden(
            "the audit log's entries and proofs are for compliance and audit: ask for a "
            "token with purpose HCOMPL",
            code="GW-0612",
        )
    return context


def _number(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or not raw.isdigit():
        raise InvalidRequest(f"{name!r} must be given as a whole number", code="GW-0901")
    return int(raw)


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
    index = int(request.path_params["index"])
    found = await run_in_threadpool(log.entry, context.store, index)
    if found is None:
        raise NotFound(f"the audit log has no entry {index}", code="GW-0903")
    return responses.FhirResponse(fhirjson.loads(found))


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

    return responses.FhirResponse(await run_in_threadpool(prove))


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

    return responses.FhirResponse(await run_in_threadpool(prove))


ROUTES: list[BaseRoute] = [
    Route("/audit/public-key", public_key, methods=["GET"]),
    Route("/audit/checkpoint", latest_checkpoint, methods=["GET"]),
    Route("/audit/entries/{index:int}", entry, methods=["GET"]),
    Route("/audit/proof/inclusion", inclusion, methods=["GET"]),
    Route("/audit/proof/consistency", consistency, methods=["GET"]),
]
