"""The FHIR REST routes: https://hl7.org/fhir/R4/http.html.

Each handler only translates: HTTP in, a call on the request's repository
(``gateway.repository``, bound to the requester by ``deps.authenticated``), a
FHIR response out. No handler reads or changes resources, or asks the
consent layer, any other way. Errors are raised as ``gateway.errors`` kinds and answered
by the handlers in ``gateway.http.app``.

The routes are plain Starlette routes: they take the request and return a
response. FastAPI's dependency solving and parameter binding added nothing
here but cost (measured with ``bench/rest_core.py``: a read took 0.28 ms of
server CPU inside a FastAPI app and 0.21 ms without one). Every handler starts
with ``deps.authenticated`` or ``deps.public``, which is what a dependency
would do.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from conformance.capability import AdvertisedParameter, capability_statement
from conformance.registry import TypeInteraction
from gateway import __version__
from gateway.auth.scopes import Permission
from gateway.documents import html as document_html
from gateway.errors import (
    ExportFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    UnsupportedMediaType,
)
from gateway.export import jobs as export_jobs
from gateway.export import manifest as export_manifest
from gateway.export.asking import GROUP as GROUP_LEVEL
from gateway.export.asking import NDJSON
from gateway.export.asking import PATIENT as PATIENT_LEVEL
from gateway.export.asking import SYSTEM as SYSTEM_LEVEL
from gateway.http import audit as audit_http
from gateway.http import bodies, responses
from gateway.http.bodies import BodyLimits
from gateway.http.deps import FhirContext, authenticated, public
from gateway.http.middleware import read_body
from gateway.http.negotiation import (
    check_content_type,
    parse_prefer,
    return_preference,
    wants_html,
)
from gateway.interactions import bundle as bundles
from gateway.interactions import patching, write
from gateway.interactions.patching import Patch
from gateway.interactions.types import require
from gateway.notifications import topics
from gateway.operations import documents
from gateway.operations import ingest as ingests
from gateway.operations import subscription_status as subscription_operations
from gateway.search.compartments import compartment_members, compartment_parameters
from gateway.search.parameters import parameters_for
from gateway.search.query import parse_search, parse_system_search
from gateway.search.sql import SEARCHABLE_TYPES


async def _json_body(request: Request, context: FhirContext) -> Any:
    check_content_type(request.headers.get("content-type"))
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send a FHIR resource", code="GW-0101")
    return bodies.parse(body, BodyLimits.of(context.settings))


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


def _path(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _lenient(request: Request) -> bool:
    return parse_prefer(request.headers.get("prefer")).get("handling") == "lenient"


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
        subscription_topics=[topic.url for topic in topics.TOPICS],
    )
    return responses.FhirResponse(body)


async def batch_or_transaction(request: Request) -> Response:
    context = await authenticated(request)
    body = await _json_body(request, context)
    prefer = return_preference(request.headers.get("prefer"))
    return responses.bundle(await context.repo.bundle(body, prefer))


async def ingest(request: Request) -> Response:
    """A source pushes its own records; each is mapped and loaded."""
    context = await authenticated(request)
    fmt = ingests.ingest_format(
        request.query_params.get("format"), request.headers.get("content-type")
    )
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send the records", code="GW-0101")
    return responses.FhirResponse(await context.repo.ingest(fmt, body))


async def system_history(request: Request) -> Response:
    context = await authenticated(request)
    return responses.bundle(await context.repo.history(_params(request), "_history"))


# -- type level --------------------------------------------------------------------


async def create(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.CREATE)
    body = await _json_body(request, context)
    if_none_exist = request.headers.get("if-none-exist") or None
    result = await context.repo.create(res_type, body, if_none_exist)
    return _written(request, context, result)


async def conditional_update(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.UPDATE)
    query = _query_without_format(request)
    if not query:
        raise InvalidRequest(
            f"PUT {res_type} needs search criteria (conditional update) or an id in the URL",
            code="GW-0113",
        )
    body = await _json_body(request, context)
    if_match = bundles.parse_if_match(request.headers.get("if-match"))
    result = await context.repo.conditional_update(res_type, query, body, if_match)
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
    query = parse_search(res_type, params, base_url=context.base_url, lenient=_lenient(request))
    if compartment is not None:
        owner_type, owner_id = compartment
        codes = compartment_parameters(owner_type, res_type)
        if not codes:
            raise NotFound(f"{res_type} is not in the {owner_type} compartment", code="GW-0340")
        query.compartment = (owner_type, owner_id, compartment_members(owner_type, (res_type,)))
    return responses.bundle(await context.repo.search(query, path))


async def search_system(request: Request) -> Response:
    """``GET [base]?_type=...``: one search across several types."""
    context = await authenticated(request)
    searchable = context.scopes.types_allowing(Permission.SEARCH)
    if not searchable:
        raise Forbidden(
            f"the access token's scopes ({context.scopes}) allow searching no type",
            code="GW-0611",
        )
    query = parse_system_search(
        _params(request), base_url=context.base_url, lenient=_lenient(request), within=searchable
    )
    return responses.bundle(await context.repo.search(query, ""))


async def search_type(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    if res_type == "AuditEvent":  # the entries of the audit log, not stored resources
        context.repo.allow(res_type, Permission.SEARCH)
        return await audit_http.search_events(request, context)
    return await _search(request, context, res_type, _params(request), res_type)


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
    body = await read_body(
        request.receive, dict(request.headers), context.settings.max_search_form_bytes
    )
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the form body is not UTF-8", code="GW-0103") from exc
    return await _search(request, context, res_type, _params(request) + form, res_type)


async def compartment_search(request: Request) -> Response:
    """``GET Patient/[id]/[type]``: the type's resources in a patient's compartment."""
    context = await authenticated(request)
    owner_type, owner_id = _path(request, "owner_type"), _path(request, "owner_id")
    res_type = _path(request, "res_type")
    return await _search(
        request,
        context,
        res_type,
        _params(request),
        f"{owner_type}/{owner_id}/{res_type}",
        compartment=(owner_type, owner_id),
    )


async def patient_everything(request: Request) -> Response:
    """``GET Patient/[id]/$everything``: the person's record the requester may see."""
    context = await authenticated(request)
    patient_id = _path(request, "res_id")
    return responses.bundle(await context.repo.everything(patient_id, _params(request)))


async def patient_document(request: Request) -> Response:
    """``GET|POST Patient/[id]/$summary`` and ``$red-bag`` (and at the type
    level, ``Patient/$summary?identifier=<NHS number>``): the document built
    for the requester, signed, as FHIR JSON or printable HTML."""
    context = await authenticated(request, html=True)
    operation = _path(request, "operation")
    documents.kind_of(operation)  # 404 for an operation that is not a document
    body = None
    if request.method == "POST":
        raw = await read_body(
            request.receive, dict(request.headers), context.settings.max_body_bytes
        )
        if raw.strip():
            check_content_type(request.headers.get("content-type"))
            body = bodies.parse(raw, BodyLimits.of(context.settings))
    params = documents.parameters(_params(request), body)
    built = await context.repo.document(operation, request.path_params.get("res_id"), params)
    # Signing (canonical JSON of the whole document) is CPU work: off the loop.
    signed = await run_in_threadpool(
        request.app.state.document_signer.sign,
        built.bundle,
        built.bundle["timestamp"],
        built.author,
    )
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
    report = await context.repo.access_report(_path(request, "res_id"))
    return responses.FhirResponse(report)


async def access_check(request: Request) -> Response:
    """``POST [base]/$access-check``: what an organisation would see of a
    person's record, and why (compliance and audit only)."""
    context = await authenticated(request)
    body = await _json_body(request, context)
    return responses.FhirResponse(await context.repo.access_check(body))


async def validate(request: Request) -> Response:
    """``POST [type]/$validate`` and ``POST [type]/[id]/$validate``."""
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    res_id = request.path_params.get("res_id")
    raw = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    body = None
    if raw.strip():  # none for a delete
        check_content_type(request.headers.get("content-type"))
        body = bodies.parse(raw, BodyLimits.of(context.settings))
    outcome = await context.repo.validate(res_type, res_id, body, _params(request))
    return responses.FhirResponse(outcome)


async def type_history(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    path = f"{res_type}/_history"
    return responses.bundle(await context.repo.history(_params(request), path, res_type))


# -- instance level ----------------------------------------------------------------


async def read(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    if res_type == "AuditEvent":  # an entry of the audit log, not a stored resource
        context.repo.allow(res_type, Permission.READ)
        return await audit_http.read_event(context, res_id)
    found = await context.repo.read(res_type, res_id)
    if request.headers.get("if-none-match") == f'W/"{found.version}"':
        return Response(status_code=304, headers=responses.version_headers(found))
    return responses.resource(found)


async def update(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    require(res_type, TypeInteraction.UPDATE)
    body = await _json_body(request, context)
    if_match = bundles.parse_if_match(request.headers.get("if-match"))
    result = await context.repo.update(res_type, res_id, body, if_match)
    return _written(request, context, result)


async def _patch_body(request: Request, context: FhirContext) -> Patch:
    """A JSON Patch (``application/json-patch+json``) or a FHIRPath Patch (a
    Parameters resource, ``application/fhir+json``)."""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    fhirpath_patch = media in ("application/fhir+json", "application/json")
    if media != patching.MEDIA_TYPE and not fhirpath_patch:
        raise UnsupportedMediaType(
            f"Content-Type {request.headers.get('content-type')!r} is not a patch the gateway "
            f"takes: send a JSON Patch as {patching.MEDIA_TYPE}, or a FHIRPath Patch "
            "(Parameters) as application/fhir+json",
            code="GW-0415",
        )
    body = await read_body(request.receive, dict(request.headers), context.settings.max_body_bytes)
    if not body.strip():
        raise InvalidRequest("the request has no body; send a patch", code="GW-0101")
    parsed = bodies.parse(body, BodyLimits.of(context.settings))
    if fhirpath_patch:
        return patching.parse_fhirpath_patch(parsed)
    return patching.parse(parsed)


async def patch(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    require(res_type, TypeInteraction.PATCH)
    document = await _patch_body(request, context)
    if_match = bundles.parse_if_match(request.headers.get("if-match"))
    result = await context.repo.patch(res_type, res_id, document, if_match)
    return _written(request, context, result)


async def conditional_patch(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.PATCH)
    query = _query_without_format(request)
    if not query:
        raise InvalidRequest(
            f"PATCH {res_type} needs search criteria (conditional patch) or an id in the URL",
            code="GW-0113",
        )
    document = await _patch_body(request, context)
    if_match = bundles.parse_if_match(request.headers.get("if-match"))
    result = await context.repo.conditional_patch(res_type, query, document, if_match)
    return _written(request, context, result)


async def delete(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    require(res_type, TypeInteraction.DELETE)
    deleted = await context.repo.delete(res_type, _path(request, "res_id"))
    headers = {"ETag": f'W/"{deleted.version}"'} if deleted else {}
    return Response(status_code=204, headers=headers)


async def instance_history(request: Request) -> Response:
    context = await authenticated(request)
    res_type, res_id = _path(request, "res_type"), _path(request, "res_id")
    path = f"{res_type}/{res_id}/_history"
    return responses.bundle(await context.repo.history(_params(request), path, res_type, res_id))


async def vread(request: Request) -> Response:
    context = await authenticated(request)
    res_type = _path(request, "res_type")
    res_id, version_id = _path(request, "res_id"), _path(request, "version_id")
    return responses.resource(await context.repo.vread(res_type, res_id, version_id))


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


class _PatientLevel(_ResourceType):
    regex = "Patient"


class _ExportId(_ResourceType):
    """An export's id: 32 hex digits (``gateway.export.jobs``)."""

    regex = "[0-9a-f]{32}"


class _ExportFile(_ResourceType):
    """An export's file name: ``<type>-<n>.ndjson``."""

    regex = "[A-Z][A-Za-z]{0,63}-[0-9]{1,9}\\.ndjson"


register_url_convertor("patient_level", _PatientLevel())
register_url_convertor("export_id", _ExportId())
register_url_convertor("export_file", _ExportFile())
register_url_convertor("fhir_type", _ResourceType())
register_url_convertor("document_operation", _DocumentOperation())
register_url_convertor("fhir_id", _LogicalId())

_TYPE = "/fhir/{res_type:fhir_type}"
_INSTANCE = _TYPE + "/{res_id:fhir_id}"


async def _operation_params(request: Request, context: Any) -> list[tuple[str, str]]:
    """An operation's parameters: the query's, and a POSTed Parameters
    resource's primitive values."""
    params = _params(request)
    if request.method == "POST":
        raw = await read_body(
            request.receive, dict(request.headers), context.settings.max_body_bytes
        )
        if raw.strip():
            check_content_type(request.headers.get("content-type"))
            params += subscription_operations.body_parameters(
                bodies.parse(raw, BodyLimits.of(context.settings))
            )
    return params


async def subscription_status(request: Request) -> Response:
    """``GET|POST Subscription/[id]/$status``: where its delivery stands."""
    context = await authenticated(request)
    return responses.bundle(await context.repo.subscription_status(_path(request, "res_id")))


async def subscription_events(request: Request) -> Response:
    """``GET|POST Subscription/[id]/$events``: its events, fetched."""
    context = await authenticated(request)
    params = await _operation_params(request, context)
    sub_id = _path(request, "res_id")
    return responses.bundle(await context.repo.subscription_events(sub_id, params))


# -- bulk export (population health; gateway.export) --------------------------------


async def bulk_export(request: Request) -> Response:
    """``GET [base]/$export``, ``[base]/Patient/$export`` and
    ``[base]/Group/[id]/$export``: an export accepted (202), its status at
    ``Content-Location``."""
    context = await authenticated(request, bulk=True)
    prefer = parse_prefer(request.headers.get("prefer"))
    if "respond-async" not in prefer:
        raise InvalidRequest(
            "$export is asynchronous: send 'Prefer: respond-async'", code="GW-0700"
        )
    group = request.path_params.get("res_id")
    if group is not None:
        level, path = GROUP_LEVEL, f"Group/{group}/$export"
    elif request.path_params.get("level") == "Patient":
        level, path = PATIENT_LEVEL, "Patient/$export"
    else:
        level, path = SYSTEM_LEVEL, "$export"
    query = request.url.query
    asked = f"{context.base_url}/{path}" + (f"?{query}" if query else "")
    job = await context.repo.export_kickoff(level, _params(request), asked, group)
    return Response(
        status_code=202,
        headers={"Content-Location": export_manifest.status_url(context.base_url, job.id)},
    )


async def bulk_export_status(request: Request) -> Response:
    """``GET [base]/$export-status/[id]``: still running (202, with its
    progress), failed (500), or complete (200, the manifest); ``DELETE``
    cancels it (202)."""
    context = await authenticated(request, bulk=True)
    job_id = _path(request, "job_id")
    if request.method == "DELETE":
        await context.repo.export_cancel(job_id)
        return Response(status_code=202)
    job = await context.repo.export_job(job_id)
    if job.status == export_jobs.FAILED:
        raise ExportFailed(job.error or "the export failed")
    if job.status != export_jobs.COMPLETED:
        return Response(status_code=202, headers={"X-Progress": job.progress, "Retry-After": "2"})
    assert job.expires is not None
    return responses.PlainJsonResponse(
        export_manifest.manifest(job, context.base_url),
        headers={"Expires": formatdate(job.expires, usegmt=True)},
    )


async def bulk_export_file(request: Request) -> Response:
    """``GET [base]/$export-file/[id]/[name]``: one NDJSON file of a
    completed export, to the client that asked for it."""
    context = await authenticated(request, bulk=True, ndjson=True)
    path = await context.repo.export_file(
        _path(request, "job_id"), _path(request, "name"), context.settings.export_dir
    )
    return FileResponse(path, media_type=NDJSON)


# Starlette takes the first route whose path and method match (answering 405
# when only a path does). The convertors keep the patterns from overlapping,
# so the order is free: the hottest first.
ROUTES: list[BaseRoute] = [
    Route(_INSTANCE, read, methods=["GET"]),
    Route(_INSTANCE, update, methods=["PUT"]),
    Route(_INSTANCE, delete, methods=["DELETE"]),
    Route(_INSTANCE, patch, methods=["PATCH"]),
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
    Route(
        "/fhir/Subscription/{res_id:fhir_id}/$status",
        subscription_status,
        methods=["GET", "POST"],
    ),
    Route(
        "/fhir/Subscription/{res_id:fhir_id}/$events",
        subscription_events,
        methods=["GET", "POST"],
    ),
    Route(_TYPE, create, methods=["POST"]),
    Route(_TYPE + "/$validate", validate, methods=["POST"]),
    Route(_INSTANCE + "/$validate", validate, methods=["POST"]),
    Route(_TYPE, conditional_update, methods=["PUT"]),
    Route(_TYPE, conditional_patch, methods=["PATCH"]),
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
    Route("/fhir/", search_system, methods=["GET"]),
    Route("/fhir/_history", system_history, methods=["GET"]),
    Route("/fhir/$access-check", access_check, methods=["POST"]),
    Route("/fhir/$ingest", ingest, methods=["POST"]),
    Route("/fhir/$export", bulk_export, methods=["GET"]),
    Route("/fhir/{level:patient_level}/$export", bulk_export, methods=["GET"]),
    Route("/fhir/Group/{res_id:fhir_id}/$export", bulk_export, methods=["GET"]),
    Route("/fhir/$export-status/{job_id:export_id}", bulk_export_status, methods=["GET", "DELETE"]),
    Route(
        "/fhir/$export-file/{job_id:export_id}/{name:export_file}",
        bulk_export_file,
        methods=["GET"],
    ),
]
