"""Resource types and interactions: is this one supported here?"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from conformance.registry import ResourceSupport, TypeInteraction, resource_support
from gateway.errors import MethodNotAllowed, NotFound
from gateway.interactions.provenance import Author
from gateway.store import Querier, StoredVersion, UnitOfWork


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
    Decides nothing; a check with nothing to read is left alone."""
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


class Acting(Protocol):
    """Whom a piece of work is done for, as every interaction that reads or
    changes resources is told it: the request's repository
    (``gateway.repository``), or the gateway loading a source's records as
    that source (``gateway.loading.source``). There is no default: each
    interaction takes one, so nothing runs for no one or for everyone."""

    @property
    def author(self) -> Author:
        """Whom what it writes is authored by (``meta.source``, Provenance)."""

    def authorize(self, res_type: str, permission: str) -> None:
        """``Authorize``: refuse what the token's scopes do not grant."""

    def access(self, reader: Querier) -> Access:
        """Its consent decisions, from what ``reader`` reads (a write decides
        inside its own unit of work, from the data as the write sees it)."""

    def wrote(self, version: StoredVersion) -> None:
        """Note a version it wrote, for its audit entry."""

    def may_assign_id(self, res_type: str, res_id: str) -> bool:
        """Whether it may create ``res_type/res_id`` at an id it chose
        (update as create), where nothing it may see stands there."""

    def committing(self, uow: UnitOfWork) -> None:
        """Record in ``uow``, before it commits, what must commit with the
        versions it was told of: the gateway's audit entry of a load. A
        request's entry is written by the HTTP layer for the whole request."""


class ReturnPreference(StrEnum):
    """``Prefer: return=...``: https://hl7.org/fhir/R4/http.html#ops"""

    MINIMAL = "minimal"
    REPRESENTATION = "representation"
    OPERATION_OUTCOME = "OperationOutcome"
