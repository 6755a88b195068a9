"""Resource types and interactions: is this one supported here?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class Prefetching(Protocol):
    """What a consent check is bound to when it can read at once what
    deciding a batch of versions will read (``AccessControl``)."""

    def prefetch(self, versions: Sequence[StoredVersion], /) -> None: ...


def prefetch(visible: Visible, versions: Sequence[StoredVersion]) -> None:
    """Before ``visible`` decides ``versions`` one by one, let it read what
    those decisions need in a few statements rather than one per version.
    Decides nothing; a check with nothing to read (``everything``) is left
    alone."""
    owner = getattr(visible, "__self__", None)
    if isinstance(owner, Prefetching):
        owner.prefetch(versions)


class Access(Protocol):
    """The requester's consent decisions, as the interactions ask them."""

    def visible(self, version: StoredVersion) -> bool:
        """May the requester see this version?"""

    def check_change(self, before: StoredVersion | None, after: dict[str, Any] | None) -> None:
        """Refuse (``Forbidden``) a change the requester may not make: from
        ``before`` (``None``: nothing live) to ``after`` (``None``: deleted)."""


class _Unrestricted:
    def visible(self, version: StoredVersion) -> bool:
        return True

    def check_change(self, before: StoredVersion | None, after: dict[str, Any] | None) -> None:
        return None


# For callers that act for the gateway itself (loaders, tests, benchmarks).
UNRESTRICTED: Access = _Unrestricted()


def everything(version: StoredVersion) -> bool:
    """``Visible`` for callers that act for the gateway itself."""
    return True


# The requester's ``Access``, deciding from what ``Querier`` reads: a write
# decides inside its own unit of work, from the data as the write sees it.
AccessThrough = Callable[[Querier], Access]


def see_everything(reader: Querier) -> Access:
    """``AccessThrough`` for callers that act for the gateway itself."""
    return UNRESTRICTED


class ReturnPreference(StrEnum):
    """``Prefer: return=...``: https://hl7.org/fhir/R4/http.html#ops"""

    MINIMAL = "minimal"
    REPRESENTATION = "representation"
    OPERATION_OUTCOME = "OperationOutcome"
