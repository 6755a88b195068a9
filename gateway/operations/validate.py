"""``$validate`` (https://hl7.org/fhir/R4/resource-operation-validate.html):
whether a create, update or delete would be accepted, as an OperationOutcome,
with nothing written.

The answer is the write's own: the write is run for the requester in a unit
of work that is always rolled back, so it meets every check a real one would
(the resource's validity, the id, the token's scopes, consent's rules for
what the requester may change, what it may know is there) and nothing can
drift between the two. A write that would be refused answers ``200`` with
the refusal's issues, as the operation defines; only a request that cannot
be understood is a ``4xx``. An update or delete aimed at a record the
requester may not see answers exactly as one aimed at nothing.

``profile``: R4's definition of the type, or a UK Core profile the gateway
has (``conformance.profiles``), which the write's check then applies as it
applies the profiles a resource claims; any other is ``not-supported``.
What validation only warns of (an extensible binding not met, a claim of a
profile the gateway does not know) follows the verdict as warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance import profiles
from conformance.validation import validate_resource
from gateway import outcomes
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.interactions import write
from gateway.interactions.read import not_known
from gateway.interactions.types import Acting
from gateway.store import Store, UnitOfWork

MODES = ("create", "update", "delete")
_BASE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class ValidateRequest:
    """What is asked: the resource (none for a delete), the mode (none: is
    the resource valid at all, as a create would find it) and a profile."""

    resource: Any
    mode: str | None
    profile: str | None


@dataclass(frozen=True)
class Validated:
    """The operation's answer, and whether it found nothing to tell of (an
    update or delete of what the requester may not know is there), which is
    answered no sooner than a missing resource is."""

    outcome: dict[str, Any]
    not_found: bool


class _RolledBack(Exception):
    """Ends a dry run: the unit of work it leaves is rolled back."""


def parse(body: Any, query: list[tuple[str, str]]) -> ValidateRequest:
    """The request from its body (a resource, or Parameters with
    ``resource``, ``mode`` and ``profile``) and its query (``mode``,
    ``profile``)."""
    resource: Any = body
    mode = next((value for name, value in query if name == "mode"), None)
    profile = next((value for name, value in query if name == "profile"), None)
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        resource = None
        for parameter in body.get("parameter") or []:
            if not isinstance(parameter, dict):
                raise InvalidRequest("Parameters.parameter must be objects", code="GW-0150")
            name = parameter.get("name")
            if name == "resource":
                resource = parameter.get("resource")
            elif name == "mode":
                mode = parameter.get("valueCode") or parameter.get("valueString")
            elif name == "profile":
                profile = parameter.get("valueUri") or parameter.get("valueCanonical")
            else:
                raise InvalidRequest(
                    f"$validate takes the parameters resource, mode and profile, not {name!r}",
                    code="GW-0150",
                )
    if mode is not None and mode not in MODES:
        raise InvalidRequest(f"mode {mode!r} is not one of {', '.join(MODES)}", code="GW-0151")
    if mode != "delete" and resource is None:
        raise InvalidRequest("$validate needs the resource to check", code="GW-0152")
    return ValidateRequest(resource, mode, profile)


def validate(
    store: Store, acting: Acting, res_type: str, res_id: str | None, request: ValidateRequest
) -> Validated:
    """The OperationOutcome of the write ``request`` describes, run for
    ``acting`` and rolled back."""
    mode = request.mode or ("update" if res_id is not None else "create")
    if res_id is None and (mode == "delete" or (mode == "update" and not _has_id(request))):
        raise InvalidRequest(
            f"$validate in mode {mode} names the resource: POST [type]/[id]/$validate",
            code="GW-0153",
        )
    issues: list[dict[str, Any]] = []
    profile_issue = _profile_issue(res_type, request.profile)
    if profile_issue is not None:
        issues.append(profile_issue)
    # A UK Core profile asked for is checked by the write itself, as a claim is.
    profile = request.profile if profile_issue is None else None
    not_found = False
    try:
        _dry_run(store, lambda uow: _write(uow, acting, res_type, res_id, mode, request, profile))
    except NotFound as refused:
        not_found = True
        issues += _issues(refused)
    except GatewayError as refused:
        issues += _issues(refused)
    if not issues:
        issues.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"the {mode} would be accepted",
            }
        )
    if mode != "delete":
        issues += _warnings(request.resource, res_type, profile)
    return Validated({"resourceType": "OperationOutcome", "issue": issues}, not_found)


def _warnings(resource: Any, res_type: str, profile: str | None) -> list[dict[str, Any]]:
    """What validation warns of, which would not refuse the write: an
    extensible binding not met, a claim of a profile the gateway does not
    know (``conformance.validation``)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != res_type:
        return []
    found = validate_resource(resource, res_type, profile=profile, warnings=True)
    return [
        {
            "severity": "warning",
            "code": issue.code,
            "diagnostics": f"GW-0155: {issue.message}",
            "expression": [issue.path],
        }
        for issue in found
        if issue.severity == "warning"
    ]


def _has_id(request: ValidateRequest) -> bool:
    return isinstance(request.resource, dict) and isinstance(request.resource.get("id"), str)


def _dry_run(store: Store, work: Callable[[UnitOfWork], None]) -> None:
    try:
        with store.unit_of_work() as uow:
            work(uow)
            raise _RolledBack
    except _RolledBack:
        return


def _write(
    uow: UnitOfWork,
    acting: Acting,
    res_type: str,
    res_id: str | None,
    mode: str,
    request: ValidateRequest,
    profile: str | None,
) -> None:
    """The write itself, as ``gateway.interactions.write`` makes it, less
    what only a real write does (Provenance, the audit's note of it); the
    resource checked against ``profile`` as well, where one is asked for."""
    access = acting.access(uow)
    if mode == "delete":
        assert res_id is not None
        acting.authorize(res_type, "d")
        if write.delete_in(uow, res_type, res_id, access=access) is None:
            # Deleting what is not there succeeds (and writes nothing); that
            # it is not there is worth saying, alike for hidden and missing.
            raise not_known(res_type, res_id)
        return
    if mode == "create":
        acting.authorize(res_type, "c")
        resource = write.checked_resource(request.resource, res_type, profile=profile)
        prepared = write.prepare(res_type, write.new_id(), resource, acting.author.source)
        write.create_in(uow, prepared, access=access, fresh_id=True)
        return
    acting.authorize(res_type, "u")
    target = res_id or str(request.resource.get("id") or "")
    resource = write.checked_resource(request.resource, res_type, url_id=target, profile=profile)
    prepared = write.prepare(res_type, target, resource, acting.author.source)
    write.update_in(uow, prepared, acting=acting, access=access)


def _profile_issue(res_type: str, profile: str | None) -> dict[str, Any] | None:
    """An issue when ``profile`` is not one the gateway validates against:
    the base definition of the type, or a UK Core profile of it in the
    tables (``conformance.profiles``)."""
    if profile is None or profiles.validates(profile, res_type):
        return None
    known = [_BASE_PROFILE + res_type, *profiles.supported(res_type)]
    return {
        "severity": "error",
        "code": "not-supported",
        "diagnostics": f"GW-0154: the gateway does not validate against the profile {profile!r}; "
        f"it knows {', '.join(known)}",
    }


def _issues(refused: GatewayError) -> list[dict[str, Any]]:
    """A refusal's issues, as the OperationOutcome of the write itself
    would carry them."""
    issues: list[dict[str, Any]] = outcomes.operation_outcome(refused)["issue"]
    return issues
