"""The gateway acting for a source organisation: loading the records a
hospital, practice, council or care home sent it, from a file, an MLLP feed
or the demo's generator.

This is the one kind of ``Acting`` besides the request's repository
(``gateway.repository``). It is named for whom it acts, never a default: it
writes as the source (``meta.source``, Provenance), may write whatever the
source's records state (the source is the author of those records, and its
file is not a request under a token's scopes), and sees what is on file to
reconcile the records with it. What a load wrote is told by its
``LoadReport`` and its ledger (``gateway.loading.ledger``).
"""

from __future__ import annotations

from typing import Any

from gateway.interactions.provenance import Author
from gateway.store import Querier, StoredVersion


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

    @property
    def author(self) -> Author:
        return self._author

    def authorize(self, res_type: str, permission: str) -> None:
        return None  # a source's own file is not a request under a token

    def access(self, reader: Querier) -> _SourceAccess:
        return _SOURCE_ACCESS

    def wrote(self, version: StoredVersion) -> None:
        return None  # counted by the load's report, record by record

    def may_assign_id(self, res_type: str, res_id: str) -> bool:
        return True  # mapped ids: the same record loads to the same resource
