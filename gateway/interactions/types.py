"""Resource types and interactions: is this one supported here?"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from conformance.registry import ResourceSupport, TypeInteraction, resource_support
from gateway.errors import MethodNotAllowed, NotFound
from gateway.store import Querier, StoredVersion


def supported_type(res_type: str) -> ResourceSupport:
    support = resource_support(res_type)
    if support is None:
        raise NotFound(f"resource type {res_type!r} is not supported here", code="GW-0404")
    return support


def require(res_type: str, interaction: TypeInteraction) -> ResourceSupport:
    support = supported_type(res_type)
    if not support.supports(interaction):
        raise MethodNotAllowed(
            f"{interaction.value} is not supported for {res_type}", code="GW-0405"
        )
    return support


# Checks that the requester may do ``permission`` (a SMART letter: c r u d s)
# on a type, raising ``gateway.errors.Forbidden`` if not.
Authorize = Callable[[str, str], None]


def allow_all(res_type: str, permission: str) -> None:
    """For callers that act for the gateway itself (loaders, tests)."""


# Whether the requester may see a stored version (the consent decision).
Visible = Callable[[StoredVersion], bool]
# The requester's ``Visible``, deciding from what ``Querier`` reads: a write
# decides inside its own unit of work, from the data as the write sees it.
AccessThrough = Callable[[Querier], Visible]


def everything(version: StoredVersion) -> bool:
    """``Visible`` for callers that act for the gateway itself."""
    return True


def see_everything(reader: Querier) -> Visible:
    """``AccessThrough`` for callers that act for the gateway itself."""
    return everything


class ReturnPreference(StrEnum):
    """``Prefer: return=...``: https://hl7.org/fhir/R4/http.html#ops"""

    MINIMAL = "minimal"
    REPRESENTATION = "representation"
    OPERATION_OUTCOME = "OperationOutcome"
