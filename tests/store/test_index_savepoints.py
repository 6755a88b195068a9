"""Index rows a unit of work has yet to write follow its savepoints: a
loader undoes a refused record inside its batch (``ROLLBACK TO``), and
what that record appended is never indexed, while what the batch's other
records appended is, whether or not a search wrote it out first."""

from __future__ import annotations

import pytest

from gateway.store import IndexEntry, Store, StoredVersion, UnitOfWork, as_bytes
from gateway.store.values import TokenValue, UriValue


def _version(res_id: str, version: int) -> StoredVersion:
    return StoredVersion(
        res_type="Patient",
        res_id=res_id,
        version=version,
        last_updated="2026-01-01T00:00:00.000000Z",
        method="POST" if version == 1 else "PUT",
        content=b'{"resourceType":"Patient"}',
    )


def _append(uow: UnitOfWork, res_id: str, version: int = 1) -> None:
    uow.append(
        _version(res_id, version),
        [IndexEntry("identifier", TokenValue("urn:test", f"{res_id}-{version}"))],
    )


def _indexed(reader: Store | UnitOfWork) -> list[str]:
    rows = reader.select(
        "SELECT code FROM search_token WHERE res_type = 'Patient' AND param = 'identifier' "
        "ORDER BY code",
        [],
    )
    return [
        str(code) if not isinstance(code, bytes) else as_bytes(code).decode() for (code,) in rows
    ]


@pytest.mark.parametrize("searched", [False, True])
def test_a_record_rolled_back_to_its_savepoint_leaves_no_index_rows(
    store: Store, searched: bool
) -> None:
    """``searched``: a search inside the savepoint writes the rows out
    before it is rolled back to."""
    with store.unit_of_work() as uow:
        _append(uow, "kept")
        uow.execute("SAVEPOINT source_record", [])
        _append(uow, "refused")
        _append(uow, "kept", 2)  # an update of what an earlier record wrote
        if searched:
            assert _indexed(uow) == ["kept-2", "refused-1"]
        uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
        uow.execute("RELEASE SAVEPOINT source_record", [])
        uow.execute("SAVEPOINT source_record", [])
        _append(uow, "next")
        uow.execute("RELEASE SAVEPOINT source_record", [])
        assert _indexed(uow) == ["kept-1", "next-1"]
        _append(uow, "last")
    assert _indexed(store) == ["kept-1", "last-1", "next-1"]
    assert store.read("Patient", "refused") is None


def test_an_update_replaces_rows_not_yet_written(store: Store) -> None:
    """Created and updated in one unit of work, a resource has the rows of
    its last version only; updated in the next, the rows committed before
    are replaced."""
    with store.unit_of_work() as uow:
        _append(uow, "a")
        _append(uow, "a", 2)
    assert _indexed(store) == ["a-2"]
    with store.unit_of_work() as uow:
        _append(uow, "a", 3)
    assert _indexed(store) == ["a-3"]


def _append_two_tables(uow: UnitOfWork, res_id: str, version: int = 1) -> None:
    """A version with a row in search_token and one in search_uri."""
    uow.append(
        _version(res_id, version),
        [
            IndexEntry("identifier", TokenValue("urn:test", f"{res_id}-{version}")),
            IndexEntry("_source", UriValue(f"urn:test:{res_id}-{version}")),
        ],
    )


def _sources(reader: Store | UnitOfWork) -> list[str]:
    rows = reader.select(
        "SELECT value FROM search_uri WHERE res_type = 'Patient' AND param = '_source' "
        "ORDER BY value",
        [],
    )
    return [str(value).removeprefix("urn:test:") for (value,) in rows]


def test_a_search_of_one_table_sees_its_rows_and_the_others_follow(store: Store) -> None:
    """A statement naming one index table finds every row gathered for it
    (SQLite writes out that table's alone); the other tables' rows, and an
    update's replacing rows written out in one table and not the other,
    stand as the last version left them once the unit of work commits, and
    a savepoint rolled back to after a search undoes both tables alike."""
    with store.unit_of_work() as uow:
        _append_two_tables(uow, "a")
        _append_two_tables(uow, "b")
        assert _indexed(uow) == ["a-1", "b-1"]
        _append_two_tables(uow, "a", 2)
        uow.execute("SAVEPOINT source_record", [])
        _append_two_tables(uow, "b", 2)
        assert _sources(uow) == ["a-2", "b-2"]
        assert _indexed(uow) == ["a-2", "b-2"]
        uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
        uow.execute("RELEASE SAVEPOINT source_record", [])
        assert _sources(uow) == ["a-2", "b-1"]
    assert _indexed(store) == ["a-2", "b-1"]
    assert _sources(store) == ["a-2", "b-1"]
    with store.unit_of_work() as uow:
        _append_two_tables(uow, "a", 3)
        assert _indexed(uow) == ["a-3", "b-1"]
    assert _sources(store) == ["a-3", "b-1"]
