"""The FHIR REST routes: https://hl7.org/fhir/R4/http.html.

Each handler only translates: HTTP in, a call on ``gateway.interactions``, a
FHIR response out. Errors are raised as ``gateway.errors`` kinds and answered
by the handlers in ``gateway.http.app``.

The routes are plain Starlette routes: they take the request and return a
response. FastAPI's dependency solving and parameter binding added nothing
here but cost (measured with ``bench/rest_core.py``: a read took 0.28 ms of
server CPU inside a FastAPI app and 0.21 ms without one). Every handler starts
with ``deps.authenticated`` or ``deps.public``, which is what a dependency
would do.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from conformance.capability import AdvertisedParameter, capability_statement
from conformance.registry import RESOURCES, TypeInteraction
from gateway import __version__, fhirjson
from gateway.access.control import AccessControl
from gateway.access.people import registered_practices
from gateway.audit import report as audit_report
from gateway.auth.enforce import authorize_search, includable
from gateway.auth.scopes import Permission
from gateway.auth.tokens import Purpose
from gateway.documents import html as document_html
from gateway.errors import Forbidden, InvalidRequest, NotFound, UnsupportedMediaType
from gateway.http import audit as audit_http
from gateway.http import responses
from gateway.http.deps import FhirContext, authenticated, public
from gateway.http.middleware import read_body
from gateway.http.negotiation import (
    check_content_type,
    parse_prefer,
    return_preference,
    wants_html,
)
from gateway.interactions import access_check as checks
from gateway.interactions import bundle as bundles
from gateway.interactions import documents, write
from gateway.interactions import history as histories
from gateway.interactions import ingest as ingests
from gateway.interactions import read as reads
from gateway.interactions import search as searches
from gateway.interactions.everything import everything_query
from gateway.interactions.types import require, supported_type
from gateway.search.compartments import compartment_members, compartment_parameters
from gateway.search.parameters import parameters_for
from gateway.search.query import SearchQuery, parse_search, parse_system_search
from gateway.search.sql import SEARCHABLE_TYPES
from gateway.store import StoredVersion


async def _json_body(request: Request, context: FhirContext) -> Any:
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send a FHIR resource", code="GW-0101")
    return fhirjson.loads(body)


async def _disclosed(
    context: FhirContext,
    found: StoredVersion | None,
    answers: reads.Answers,
    access: AccessControl | None = None,
) -> StoredVersion:
    """``found`` if consent lets the requester know of it; otherwise the
    answer for a missing resource, exactly. ``access``: the request's
    decisions so far, when it goes on to decide more (the person is then
    read once)."""
    if found is None:
        raise answers.missing()
    access = access or context.access()
    at_once = access.decided_at_once(found)
    if at_once is not None:
        if not at_once.permit:
            raise answers.missing()
        return found
    return await run_in_threadpool(reads.disclosed, context.store, found, access.visible, answers)


async def _searched(context: FhirContext, query: SearchQuery, path: str) -> Response:
    """Run ``query`` for the requester (consent decides every candidate; the
    token's scopes, which types may be included) as the searchset at ``path``."""
    result = await run_in_threadpool(
        searches.search,
        context.store,
        query,
        visible=context.access().visible,
        includable=includable(context.who.scopes).__contains__,
    )
    if not (result.matches or result.included or result.total):
        context.found_nothing()
    return responses.bundle(
        searches.searchset_bundle(result, query, base_url=context.base_url, path=path)
    )


def _query_without_format(request: Request) -> str:
    """The query string less ``_format``, as criteria for a conditional write."""
    return "&".join(
        part for part in request.url.query.split("&") if part and not part.startswith("_format=")
    )


def _written(request: Request, context: FhirContext, result: write.WriteResult) -> Response:
    context.wrote(result.version)
    return responses.written(
        result.version,
        201 if result.created else 200,
        return_preference(request.headers.get("prefer")),
        context.base_url,
    )


def _history_params(request: Request) -> histories.HistoryRequest:
    return histories.parse_history_params(list(request.query_params.multi_items()))


def _path(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


# -- whole system ------------------------------------------------------------------


def _advertised(res_type: str) -> list[AdvertisedParameter]:
    return [
        AdvertisedParameter(p.code, p.type, p.url)
        for p in parameters_for(res_type).values()
        if p.type in SEARCHABLE_TYPES
    ]


def _references(res_type: str) -> list[str]:
    return [p.code for p in parameters_for(res_type).values() if p.type == "reference"]


async def metadata(request: Request) -> Response:
    """The CapabilityStatement, built from the registry the routes obey."""
    context = public(request)
    body = capability_statement(
        base_url=context.base_url,
        software_version=__version__,
        published=request.app.state.started_at,
        search_parameters=_advertised,
        reference_parameters=_references,
        token_endpoint=context.base_url.removesuffix("/fhir") + "/auth/token",
    )
    return responses.FhirResponse(body)


async def batch_or_transaction(request: Request) -> Response:
    context = await authenticated(request)
    body = await _json_body(request, context)
    prefer = return_preference(request.headers.get("prefer"))
    kind = body.get("type") if isinstance(body, dict) else None
    process = bundles.transaction if kind == "transaction" else bundles.batch
    result = await run_in_threadpool(
        process,
        context.store,
        body,
        base_url=context.base_url,
        prefer=prefer,
        authorize=context.allow_letter,
        author=context.author,
        access=context.access,
    )
    if any(
        str(entry.get("response", {}).get("status", "")).startswith("404")
        for entry in result.get("entry", [])
    ):
        context.found_nothing()
    return responses.bundle(result)


async def ingest(request: Request) -> Response:
    """A source pushes its own records; each is mapped and loaded."""
    context = await authenticated(request)
    fmt = ingests.ingest_format(
        request.query_params.get("format"), request.headers.get("content-type")
    )
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send the records", code="GW-0101")
    answer = await run_in_threadpool(
        ingests.ingest,
        context.store,
        fmt,
        body,
        author=context.author,
        org_kind=context.who.kind.value,
        authorize=context.allow_letter,
        access=context.access,
        wrote=context.wrote_reference,
    )
    return responses.FhirResponse(answer)


async def _history(
    request: Request,
    context: FhirContext,
    path: str,
    res_type: str | None = None,
    res_id: str | None = None,
) -> Response:
    """A page of the history at ``path`` (the server's, a type's or one
    resource's), of the versions the requester may see."""
    params = _history_params(request)
    page = await run_in_threadpool(
        partial(histories.history, visible=context.access().visible),
        context.store,
        params,
        res_type,
        res_id,
    )
    if not page.entries:
        context.found_nothing()
    return responses.bundle(
        histories.history_bundle(page, params, base_url=context.base_url, path=path)
    )


async def system_history(request: Request) -> Response:
    context = await authenticated(request)
    for res_type in RESOURCES:  # the whole server's history: every type's
        context.allow(res_type, Permission.SEARCH)
    return await _history(request, context, "_history")


# -- type level --------------------------------------------------------------------


async def create(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.CREATE)
    context.allow(res_type, Permission.CREATE)
    if_none_exist = request.headers.get("if-none-exist")
    if if_none_exist:
        context.allow(res_type, Permission.SEARCH)
    body = await _json_body(request, context)
    result = await run_in_threadpool(
        write.create,
        context.store,
        res_type,
        body,
        if_none_exist=if_none_exist,
        author=context.author,
        access=context.access,
    )
    return _written(request, context, result)


async def conditional_update(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.UPDATE)
    context.allow(res_type, Permission.UPDATE)
    context.allow(res_type, Permission.SEARCH)
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
        author=context.author,
        access=context.access,
    )
    return _written(request, context, result)


async def _search(
    request: Request,
    context: FhirContext,
    res_type: str,
    params: list[tuple[str, str]],
    path: str,
    compartment: tuple[str, str] | None = None,
) -> Response:
    require(res_type, TypeInteraction.SEARCH_TYPE)
    lenient = parse_prefer(request.headers.get("prefer")).get("handling") == "lenient"
    query = parse_search(res_type, params, base_url=context.base_url, lenient=lenient)
    authorize_search(context.who.scopes, query)
    if compartment is not None:
        owner_type, owner_id = compartment
        codes = compartment_parameters(owner_type, res_type)
        if not codes:
            raise NotFound(f"{res_type} is not in the {owner_type} compartment", code="GW-0340")
        query.compartment = (owner_type, owner_id, compartment_members(owner_type, (res_type,)))
    return await _searched(context, query, path)


async def search_system(request: Request) -> Response:
    """``GET [base]?_type=...``: one search across several types."""
    context = await authenticated(request)
    lenient = parse_prefer(request.headers.get("prefer")).get("handling") == "lenient"
    searchable = context.who.scopes.types_allowing(Permission.SEARCH)
    if not searchable:
        raise Forbidden(
            f"the access token's scopes ({context.who.scopes}) allow searching no type",
            code="GW-0611",
        )
    query = parse_system_search(
        list(request.query_params.multi_items()),
        base_url=context.base_url,
        lenient=lenient,
        within=searchable,
    )
    authorize_search(context.who.scopes, query)
    return await _searched(context, query, "")


async def search_type(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    if res_type == "AuditEvent":  # the entries of the audit log, not stored resources
        context.allow(res_type, Permission.SEARCH)
        return await audit_http.search_events(request, context)
    params = list(request.query_params.multi_items())
    return await _search(request, context, res_type, params, res_type)


async def search_by_post(request: Request) -> Response:
    """``POST [type]/_search``: the parameters in a form body (and the URL)."""
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "POST _search takes application/x-www-form-urlencoded parameters",
            code="GW-0415",
        )
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the form body is not UTF-8", code="GW-0103") from exc
    params = list(request.query_params.multi_items()) + form
    return await _search(request, context, res_type, params, res_type)


async def compartment_search(request: Request) -> Response:
    """``GET Patient/[id]/[type]``: the type's resources in a patient's compartment."""
    context = await authenticated(request)
    owner_type, owner_id = _path(request, "owner_type"), _path(request, "owner_id")
    res_type = _path(request, "res_type")
    params = list(request.query_params.multi_items())
    return await _search(
        request,
        context,
        res_type,
        params,
        f"{owner_type}/{owner_id}/{res_type}",
        compartment=(owner_type, owner_id),
    )


async def patient_everything(request: Request) -> Response:
    """``GET Patient/[id]/$everything``: the person's record the requester may see."""
    context = await authenticated(request)
    patient_id = _path(request, "res_id")
    context.allow("Patient", Permission.READ)
    found = await reads.read_async(context.reader, "Patient", patient_id)
    await _disclosed(context, found, reads.read_answers("Patient", patient_id))
    query = everything_query(
        patient_id,
        list(request.query_params.multi_items()),
        base_url=context.base_url,
        within=context.who.scopes.types_allowing(Permission.SEARCH),
    )
    return await _searched(context, query, f"Patient/{patient_id}/$everything")


async def patient_document(request: Request) -> Response:
    """``GET|POST Patient/[id]/$summary`` and ``$red-bag`` (and at the type
    level, ``Patient/$summary?identifier=<NHS number>``): the document built
    for the requester, signed, as FHIR JSON or printable HTML."""
    context = await authenticated(request, html=True)
    kind = documents.kind_of(_path(request, "operation"))
    context.allow("Patient", Permission.READ)
    body = None
    if request.method == "POST":
        raw = await read_body(
            request.receive, dict(request.headers), context.settings.max_body_bytes
        )
        if raw.strip():
            check_content_type(request.headers.get("content-type"))
            body = fhirjson.loads(raw)
    params = documents.parameters(list(request.query_params.multi_items()), body)
    access = context.access()
    patient_id = request.path_params.get("res_id")
    if patient_id is not None:
        if any(name == "identifier" for name, _ in params):
            raise InvalidRequest(
                "identifier names the person at the type level (Patient/$summary); "
                "here the id in the path does",
                code="GW-0451",
            )
        found = await reads.read_async(context.reader, "Patient", patient_id)
        patient = await _disclosed(
            context, found, reads.read_answers("Patient", patient_id), access
        )
    else:
        patient = await run_in_threadpool(
            documents.identified, context.store, params, access.visible
        )
    readable = context.who.scopes.types_allowing(Permission.READ)
    built = await run_in_threadpool(
        documents.document,
        context.store,
        kind,
        patient,
        visible=access.visible,
        readable=readable.__contains__,
        base_url=context.base_url,
    )
    # Signing (canonical JSON of the whole document) is CPU work: off the loop.
    signed = await run_in_threadpool(
        request.app.state.document_signer.sign,
        built.bundle,
        built.bundle["timestamp"],
        built.author,
    )
    if context.disclosures is not None:
        context.disclosures.sent(built.identifier, kind.title, built.entries)
    fmt = request.query_params.get("_format")
    if wants_html(request.headers.get("accept"), fmt):
        return HTMLResponse(
            await run_in_threadpool(document_html.render, signed),
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
    return responses.bundle(signed)


async def access_report(request: Request) -> Response:
    """``GET Patient/[id]/$access-report``: who accessed the person's record,
    when, why and under which rule; for auditors (HCOMPL) and the person's
    own GP practice (TREAT)."""
    context = await authenticated(request)
    patient_id = _path(request, "res_id")
    who = context.who
    if who.purpose is not Purpose.HCOMPL:
        practices = await run_in_threadpool(registered_practices, context.store, patient_id)
        if who.purpose is not Purpose.TREAT or who.org_ods not in practices:
            raise Forbidden(
                "a person's access report is for auditors (HCOMPL) and their registered GP "
                "practice",
                code="GW-0613",
            )
    found = await reads.read_async(context.reader, "Patient", patient_id)
    if found is None or found.deleted:
        raise NotFound(f"Patient/{patient_id} is not known", code="GW-0410")
    if context.disclosures is not None:  # the report is itself an access to the record
        context.disclosures.patients.add(patient_id)
    report = await run_in_threadpool(audit_report.access_report, context.store, patient_id)
    return responses.FhirResponse(report)


async def access_check(request: Request) -> Response:
    """``POST [base]/$access-check``: what an organisation would see of a
    person's record, and why (compliance and audit only)."""
    context = await authenticated(request)
    if context.who.purpose is not Purpose.HCOMPL:
        raise Forbidden(
            "$access-check is for compliance and audit: it needs a token asked for with "
            "purpose HCOMPL",
            code="GW-0612",
        )
    context.allow("Patient", Permission.READ)
    context.allow("Consent", Permission.READ)
    body = await _json_body(request, context)
    question = await run_in_threadpool(checks.parse_question, context.store, body)
    answer = await run_in_threadpool(checks.access_check, context.store, question)
    return responses.FhirResponse(answer)


async def type_history(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    supported_type(res_type)
    context.allow(res_type, Permission.SEARCH)
    return await _history(request, context, f"{res_type}/_history", res_type)


# -- instance level ----------------------------------------------------------------


async def read(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    supported_type(res_type)
    context.allow(res_type, Permission.READ)
    res_id = _path(request, "res_id")
    if res_type == "AuditEvent":
        return await audit_http.read_event(context, res_id)
    found = await reads.read_async(context.reader, res_type, res_id)
    found = await _disclosed(context, found, reads.read_answers(res_type, res_id))
    if request.headers.get("if-none-match") == f'W/"{found.version}"':
        return Response(status_code=304, headers=responses.version_headers(found))
    return responses.resource(found)


async def update(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    require(res_type, TypeInteraction.UPDATE)
    context.allow(res_type, Permission.UPDATE)
    body = await _json_body(request, context)
    result = await run_in_threadpool(
        write.update,
        context.store,
        res_type,
        res_id,
        body,
        if_match=bundles.parse_if_match(request.headers.get("if-match")),
        author=context.author,
        access=context.access,
    )
    return _written(request, context, result)


async def delete(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.DELETE)
    context.allow(res_type, Permission.DELETE)
    deleted = await run_in_threadpool(
        write.delete,
        context.store,
        res_type,
        _path(request, "res_id"),
        author=context.author,
        access=context.access,
    )
    if deleted is not None:
        context.wrote(deleted)
    headers = {"ETag": f'W/"{deleted.version}"'} if deleted else {}
    return Response(status_code=204, headers=headers)


async def instance_history(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    supported_type(res_type)
    context.allow(res_type, Permission.READ)
    return await _history(request, context, f"{res_type}/{res_id}/_history", res_type, res_id)


async def vread(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    supported_type(res_type)
    context.allow(res_type, Permission.READ)
    res_id, version_id = _path(request, "res_id"), _path(request, "version_id")
    found = await reads.vread_async(context.reader, res_type, res_id, version_id)
    found = await _disclosed(context, found, reads.vread_answers(res_type, res_id, version_id))
    return responses.resource(found)


class _ResourceType(Convertor[str]):
    """A resource type name: ``Patient``, never ``metadata`` or ``_history``."""

    regex = "[A-Z][A-Za-z]{0,63}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _LogicalId(_ResourceType):
    """A FHIR id (https://hl7.org/fhir/R4/datatypes.html#id), so ``_history``
    is never taken for one."""

    regex = "[A-Za-z0-9\\-.]{1,64}"


class _DocumentOperation(_ResourceType):
    """The document operations: ``$summary``, ``$red-bag``."""

    regex = "summary|red-bag"


register_url_convertor("fhir_type", _ResourceType())
register_url_convertor("document_operation", _DocumentOperation())
register_url_convertor("fhir_id", _LogicalId())

_TYPE = "/fhir/{res_type:fhir_type}"
_INSTANCE = _TYPE + "/{res_id:fhir_id}"

# Starlette takes the first route whose path and method match (answering 405
# when only a path does). The convertors keep the patterns from overlapping,
# so the order is free: the hottest first.
ROUTES: list[BaseRoute] = [
    Route(_INSTANCE, read, methods=["GET"]),
    Route(_INSTANCE, update, methods=["PUT"]),
    Route(_INSTANCE, delete, methods=["DELETE"]),
    Route(_INSTANCE + "/_history/{version_id}", vread, methods=["GET"]),
    Route(_INSTANCE + "/_history", instance_history, methods=["GET"]),
    Route("/fhir/Patient/{res_id:fhir_id}/$everything", patient_everything, methods=["GET"]),
    Route("/fhir/Patient/{res_id:fhir_id}/$access-report", access_report, methods=["GET"]),
    Route(
        "/fhir/Patient/{res_id:fhir_id}/${operation:document_operation}",
        patient_document,
        methods=["GET", "POST"],
    ),
    Route(
        "/fhir/Patient/${operation:document_operation}",
        patient_document,
        methods=["GET", "POST"],
    ),
    Route(_TYPE, create, methods=["POST"]),
    Route(_TYPE, conditional_update, methods=["PUT"]),
    Route(_TYPE, search_type, methods=["GET"]),
    Route(_TYPE + "/_search", search_by_post, methods=["POST"]),
    Route(
        "/fhir/{owner_type:fhir_type}/{owner_id:fhir_id}/{res_type:fhir_type}",
        compartment_search,
        methods=["GET"],
    ),
    Route(_TYPE + "/_history", type_history, methods=["GET"]),
    Route("/fhir/metadata", metadata, methods=["GET"]),
    Route("/fhir", batch_or_transaction, methods=["POST"]),
    Route("/fhir", search_system, methods=["GET"]),
    Route("/fhir/", batch_or_transaction, methods=["POST"]),
    Route("/fhir/_history", system_history, methods=["GET"]),
    Route("/fhir/$access-check", access_check, methods=["POST"]),
    Route("/fhir/$ingest", ingest, methods=["POST"]),
]
