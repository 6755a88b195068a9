"""The gateway acting for a source organisation: loading the records a
hospital, practice, council or care home sent it, from a file, an MLLP feed
or the demo's generator.

This is the one kind of ``Acting`` besides the request's repository
(``gateway.repository``). It is named for whom it acts, never a default: it
writes as the source (``meta.source``, Provenance), may write whatever the
source's records state (the source is the author of those records, and its
file is not a request under a token's scopes), and sees what is on file to
reconcile the records with it. What it wrote is audited as the gateway
acting for the source: one entry per unit of work, committed with the
versions it names (``Acting.committing``).
"""

from __future__ import annotations

from typing import Any

from gateway import fhirjson
from gateway.access.facts import person_of
from gateway.audit import log
from gateway.audit.events import load_event
from gateway.interactions.provenance import Author
from gateway.store import Querier, StoredVersion, UnitOfWork


def author_for(fmt: str, source_org: str) -> Author:
    """The author of records loaded from a ``fmt`` file of ``source_org``."""
    org = source_org.upper()
    return Author(org, org, f"load:{fmt}", f"gateway load ({fmt})")


class _SourceAccess:
    """A source loading its own records reconciles them with all that is on
    file, and may change anything its records state."""

    def visible(self, version: StoredVersion) -> bool:
        return True

    def check_change(self, before: StoredVersion | None, after: dict[str, Any] | None) -> None:
        return None


_SOURCE_ACCESS = _SourceAccess()


class ForSource:
    """``Acting`` for the gateway loading ``author``'s records."""

    def __init__(self, author: Author) -> None:
        self._author = author
        # Versions written since the last unit of work committed, and whose.
        self._written: list[tuple[str, str | None]] = []

    @property
    def author(self) -> Author:
        return self._author

    def authorize(self, res_type: str, permission: str) -> None:
        return None  # a source's own file is not a request under a token

    def access(self, reader: Querier) -> _SourceAccess:
        return _SOURCE_ACCESS

    def wrote(self, version: StoredVersion) -> None:
        person = version.res_id if version.res_type == "Patient" else None
        if version.content is not None:
            person = person_of(fhirjson.loads(version.content))
        reference = f"{version.res_type}/{version.res_id}/_history/{version.version}"
        self._written.append((reference, person))

    def may_assign_id(self, res_type: str, res_id: str) -> bool:
        return True  # mapped ids: the same record loads to the same resource

    def committing(self, uow: UnitOfWork) -> None:
        """The load's audit entry, in the unit of work of what it names."""
        if not self._written:
            return
        written, self._written = self._written, []
        author = self._author
        record = load_event(
            recorded=fhirjson.instant(),
            org_ods=author.org_ods,
            org_name=author.org_name,
            client_id=author.client_id,
            client_name=author.client_name,
            written=written,
        )
        log.append(uow, [record])
