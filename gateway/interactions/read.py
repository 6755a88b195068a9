"""read and vread: https://hl7.org/fhir/R4/http.html#read, #vread.

Each comes in two forms over the same checks: over a ``Reader`` (inside a
transaction Bundle, where reads see the Bundle's own writes) and over an
``AsyncReader`` (the HTTP hot path: the version is fetched on the event loop
and ``disclosed`` is asked off it).

What consent hides answers exactly as what does not exist: a deletion of
content the requester could not see is "not known" too, not "Gone", which
would tell that something had been there.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.registry import TypeInteraction
from gateway.errors import Gone, NotFound
from gateway.integers import whole_number
from gateway.interactions.types import Visible, require
from gateway.store import AsyncReader, Reader, StoredVersion, last_content


@dataclass(frozen=True, slots=True)
class Answers:
    """What a read of ``res_type/res_id`` (or of its version ``version_id``)
    says when that is missing (or hidden), and when it is a deletion."""

    res_type: str
    res_id: str
    version_id: str | None = None

    def missing(self) -> NotFound:
        if self.version_id is None:
            return not_known(self.res_type, self.res_id)
        return NotFound(
            f"{self.res_type}/{self.res_id} has no version {self.version_id}", code="GW-0412"
        )

    def deleted(self) -> Gone:
        if self.version_id is None:
            return Gone(f"{self.res_type}/{self.res_id} was deleted", code="GW-0411")
        return Gone(
            f"{self.res_type}/{self.res_id} version {self.version_id} is a deletion",
            code="GW-0411",
        )


def not_known(res_type: str, res_id: str, *, creating: bool = False) -> NotFound:
    """The answer for what the requester may not see at ``res_type/res_id``,
    whether nothing is there or consent hides it; ``creating``: to a write
    that would have created it there."""
    message = f"{res_type}/{res_id} is not known"
    if creating:
        message += (
            "; create it with POST, or with PUT at an id of your organisation's own "
            "(your ODS code, a hyphen, then your id)"
        )
    return NotFound(message, code="GW-0410")


def read_answers(res_type: str, res_id: str) -> Answers:
    return Answers(res_type, res_id)


def vread_answers(res_type: str, res_id: str, version_id: str) -> Answers:
    return Answers(res_type, res_id, version_id)


def _version_number(res_type: str, res_id: str, version_id: str) -> int:
    """The version number ``version_id`` names. A version id no version can
    have (not a number, or one past any the databases hold) is answered as
    an unknown version, before anything is read: alike for every resource,
    hidden, missing or not."""
    require(res_type, TypeInteraction.VREAD)
    number = whole_number(version_id)
    if number is None:
        raise NotFound(f"{res_type}/{res_id} has no version {version_id!r}", code="GW-0412")
    return number


def disclosed(
    reader: Reader, found: StoredVersion | None, visible: Visible, answers: Answers
) -> StoredVersion:
    """``found`` if the requester may know of it; else the answer for a
    missing version (consent hides it, or never was), or for a deletion of
    what the requester could see."""
    if found is None:
        raise answers.missing()
    if found.deleted:
        last = last_content(reader, found)
        if last is None or not visible(last):
            raise answers.missing()
        raise answers.deleted()
    if not visible(found):
        raise answers.missing()
    return found


def read(store: Reader, res_type: str, res_id: str, visible: Visible) -> StoredVersion:
    """The current version, if the requester may see it."""
    require(res_type, TypeInteraction.READ)
    found = store.read(res_type, res_id)
    return disclosed(store, found, visible, read_answers(res_type, res_id))


def vread(
    store: Reader, res_type: str, res_id: str, version_id: str, visible: Visible
) -> StoredVersion:
    """One version, if the requester may see it."""
    number = _version_number(res_type, res_id, version_id)
    found = store.vread(res_type, res_id, number)
    return disclosed(store, found, visible, vread_answers(res_type, res_id, version_id))


async def read_async(reader: AsyncReader, res_type: str, res_id: str) -> StoredVersion | None:
    """The latest version (perhaps a deletion) for ``disclosed`` to judge."""
    require(res_type, TypeInteraction.READ)
    return await reader.read(res_type, res_id)


async def vread_async(
    reader: AsyncReader, res_type: str, res_id: str, version_id: str
) -> StoredVersion | None:
    """One version (perhaps a deletion) for ``disclosed`` to judge."""
    number = _version_number(res_type, res_id, version_id)
    return await reader.vread(res_type, res_id, number)
