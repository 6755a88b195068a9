"""The FHIR REST routes: https://hl7.org/fhir/R4/http.html.

Each handler only translates: HTTP in, a call on ``gateway.interactions``, a
FHIR response out. Store calls are blocking, so they run in the thread pool.
Errors are raised as ``gateway.errors`` kinds and answered by the handlers in
``gateway.http.app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conformance.capability import capability_statement
from conformance.registry import TypeInteraction
from gateway import __version__, fhirjson
from gateway.errors import InvalidRequest, MethodNotAllowed
from gateway.http import responses
from gateway.http.deps import Authenticated, FhirContext, Public
from gateway.http.middleware import read_body
from gateway.http.negotiation import check_content_type, return_preference
from gateway.interactions import bundle as bundles
from gateway.interactions import history as histories
from gateway.interactions import read as reads
from gateway.interactions import write
from gateway.interactions.types import require

router = APIRouter(prefix="/fhir")


async def _json_body(request: Request, context: FhirContext) -> Any:
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send a FHIR resource", code="GW-0101")
    return fhirjson.loads(body)


def _query_without_format(request: Request) -> str:
    """The query string less ``_format``, as criteria for a conditional write."""
    return "&".join(
        part for part in request.url.query.split("&") if part and not part.startswith("_format=")
    )


def _written(request: Request, context: FhirContext, result: write.WriteResult) -> Response:
    return responses.written(
        result.version,
        201 if result.created else 200,
        return_preference(request.headers.get("prefer")),
        context.base_url,
    )


def _history_params(request: Request) -> histories.HistoryRequest:
    return histories.parse_history_params(list(request.query_params.multi_items()))


# -- whole system ------------------------------------------------------------------


@router.get("/metadata")
async def metadata(request: Request, context: FhirContext = Public) -> Response:
    """The CapabilityStatement, built from the registry the routes obey."""
    body = capability_statement(
        base_url=context.base_url,
        software_version=__version__,
        published=request.app.state.started_at,
    )
    return responses.FhirResponse(body)


@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request, context: FhirContext = Authenticated) -> Response:
    body = await _json_body(request, context)
    prefer = return_preference(request.headers.get("prefer"))
    kind = body.get("type") if isinstance(body, dict) else None
    process = bundles.transaction if kind == "transaction" else bundles.batch
    result = await run_in_threadpool(
        process, context.store, body, base_url=context.base_url, prefer=prefer
    )
    return responses.bundle(result)


@router.get("/_history")
async def system_history(request: Request, context: FhirContext = Authenticated) -> Response:
    params = _history_params(request)
    page = await run_in_threadpool(histories.history, context.store, params)
    return responses.bundle(
        histories.history_bundle(page, params, base_url=context.base_url, path="_history")
    )


# -- type level --------------------------------------------------------------------


@router.post("/{res_type}")
async def create(request: Request, res_type: str, context: FhirContext = Authenticated) -> Response:
    require(res_type, TypeInteraction.CREATE)
    body = await _json_body(request, context)
    result = await run_in_threadpool(
        write.create,
        context.store,
        res_type,
        body,
        if_none_exist=request.headers.get("if-none-exist"),
    )
    return _written(request, context, result)


@router.put("/{res_type}")
async def conditional_update(
    request: Request, res_type: str, context: FhirContext = Authenticated
) -> Response:
    require(res_type, TypeInteraction.UPDATE)
    query = _query_without_format(request)
    if not query:
        raise InvalidRequest(
            f"PUT {res_type} needs search criteria (conditional update) or an id in the URL",
            code="GW-0113",
        )
    body = await _json_body(request, context)
    result = await run_in_threadpool(
        write.conditional_update,
        context.store,
        res_type,
        query,
        body,
        if_match=bundles.parse_if_match(request.headers.get("if-match")),
    )
    return _written(request, context, result)


@router.get("/{res_type}")
async def search_type(res_type: str, context: FhirContext = Authenticated) -> Response:
    require(res_type, TypeInteraction.READ)
    raise MethodNotAllowed(
        f"search on {res_type} is not supported by this server yet", code="GW-0406"
    )


@router.get("/{res_type}/_history")
async def type_history(
    request: Request, res_type: str, context: FhirContext = Authenticated
) -> Response:
    params = _history_params(request)
    page = await run_in_threadpool(histories.history, context.store, params, res_type)
    return responses.bundle(
        histories.history_bundle(
            page, params, base_url=context.base_url, path=f"{res_type}/_history"
        )
    )


# -- instance level ----------------------------------------------------------------


@router.get("/{res_type}/{res_id}")
async def read(
    request: Request, res_type: str, res_id: str, context: FhirContext = Authenticated
) -> Response:
    found = await run_in_threadpool(reads.read, context.store, res_type, res_id)
    if request.headers.get("if-none-match") == f'W/"{found.version}"':
        return Response(status_code=304, headers=responses.version_headers(found))
    return responses.resource(found)


@router.put("/{res_type}/{res_id}")
async def update(
    request: Request, res_type: str, res_id: str, context: FhirContext = Authenticated
) -> Response:
    require(res_type, TypeInteraction.UPDATE)
    body = await _json_body(request, context)
    result = await run_in_threadpool(
        write.update,
        context.store,
        res_type,
        res_id,
        body,
        if_match=bundles.parse_if_match(request.headers.get("if-match")),
    )
    return _written(request, context, result)


@router.delete("/{res_type}/{res_id}")
async def delete(res_type: str, res_id: str, context: FhirContext = Authenticated) -> Response:
    deleted = await run_in_threadpool(write.delete, context.store, res_type, res_id)
    headers = {"ETag": f'W/"{deleted.version}"'} if deleted else {}
    return Response(status_code=204, headers=headers)


@router.get("/{res_type}/{res_id}/_history")
async def instance_history(
    request: Request, res_type: str, res_id: str, context: FhirContext = Authenticated
) -> Response:
    params = _history_params(request)
    page = await run_in_threadpool(histories.history, context.store, params, res_type, res_id)
    return responses.bundle(
        histories.history_bundle(
            page, params, base_url=context.base_url, path=f"{res_type}/{res_id}/_history"
        )
    )


@router.get("/{res_type}/{res_id}/_history/{version_id}")
async def vread(
    res_type: str, res_id: str, version_id: str, context: FhirContext = Authenticated
) -> Response:
    found = await run_in_threadpool(reads.vread, context.store, res_type, res_id, version_id)
    return responses.resource(found)
