"""A Provenance the gateway makes is indexed without the generic extraction
(``provenance_entries``), into exactly the rows ``entries`` gives it: the
same values, in the same order, so a loader's store and the API's agree."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.access import index as access_index
from gateway.access.index import entries
from gateway.access.provenance_rows import provenance_entries
from gateway.interactions.provenance import Author, provenance
from gateway.interactions.write import _prepared_provenance, new_id, prepare
from gateway.store import StoredVersion

TRUST = Author("RKE", "Royal Free", "pas-feed", "Hospital PAS feed")
COUNCIL = Author("713", "Camden Council", "cld", "Council CLD return")
GATEWAY = Author.gateway("relabel", "Relabelling")


def _version(reference: str, version: int = 1, deleted: bool = False) -> StoredVersion:
    res_type, res_id = reference.split("/")
    return StoredVersion(
        res_type=res_type,
        res_id=res_id,
        version=version,
        last_updated="2026-03-01T10:15:00.000000Z",
        method="DELETE" if deleted else "PUT",
        content=None if deleted else b"{}",
    )


WRITTEN = {
    "a person and their visit": [
        _version("Patient/RKE-9990000018", 3),
        _version("Encounter/RKE-V0000005", 2),
        _version("Condition/RKE-V0000005-1"),
    ],
    "the visit alone": [_version("Encounter/RKE-V0000005", 2)],
    "two people": [_version("Patient/RKE-1"), _version("Patient/RKE-2", 4)],
    "a person named after another record": [
        _version("Observation/RKE-O1"),
        _version("Patient/RKE-1", 2),
    ],
    "a deletion": [_version("Flag/713-F1", 2, deleted=True)],
    "server ids": [_version("Patient/01234567-0000-7000-8000-000000000000")],
    "an odd id": [_version("Encounter/a.b-C")],
}


@pytest.mark.parametrize("written", WRITTEN.values(), ids=list(WRITTEN))
@pytest.mark.parametrize("author", [TRUST, COUNCIL, GATEWAY], ids=["trust", "council", "gateway"])
@pytest.mark.parametrize("activity", ["CREATE", "UPDATE", "DELETE"])
@pytest.mark.parametrize(
    "res_id",
    [
        "0195f0c2-a1b2-7c3d-8e4f-000000000001",
        "01234567-a1b2-7c3d-8e4f-000000000001",  # reads as an ODS code: an owner row
        "RKE-P1",
    ],
)
def test_a_provenance_has_the_rows_the_generic_extraction_gives_it(
    written: list[StoredVersion],
    author: Author,
    activity: str,
    res_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every row, in order, for each kind of write a Provenance names, and
    without the generic extraction."""
    content = prepare("Provenance", res_id, provenance(author, activity, written)).content
    generic = entries(content)
    with monkeypatch.context() as patched:
        patched.setattr(access_index, "entries", _not_called)
        fast = provenance_entries(content)
    assert fast == generic


def _not_called(resource: dict[str, Any]) -> Any:
    raise AssertionError("the generic extraction was used")


def test_a_provenance_a_write_stores_is_indexed_as_prepare_indexes_it() -> None:
    """``record_provenance``'s Provenance: the content and rows ``prepare``
    gives the same Provenance."""
    record = provenance(TRUST, "UPDATE", WRITTEN["a person and their visit"])
    res_id = new_id()
    fast, generic = _prepared_provenance(res_id, record), prepare("Provenance", res_id, record)
    assert fast.content == generic.content
    assert fast.index == generic.index


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p["meta"].update(security=[{"system": "s", "code": "R"}]),
        lambda p: p.update(location={"reference": "Location/L1"}),
        lambda p: p.update(occurredDateTime="2026-03-01"),
        lambda p: p.update(target=[{"reference": "Patient/p1", "type": "Patient"}]),
        lambda p: p.update(target=[{"identifier": {"system": "s", "value": "v"}}]),
        lambda p: p["agent"].append({"who": {"reference": "Practitioner/x"}}),
        lambda p: p.update(recorded="2026-03"),
    ],
)
def test_any_other_provenance_still_has_the_generic_rows(change: Any) -> None:
    """A Provenance the gateway would not make (labels, other elements,
    other targets or agents) is indexed as ``entries`` indexes it."""
    content = prepare(
        "Provenance", new_id(), provenance(TRUST, "CREATE", WRITTEN["two people"])
    ).content
    change(content)
    assert provenance_entries(content) == entries(content)
