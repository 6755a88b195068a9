"""The organisation directory (``gateway.directory``) and the operator's CSV
of organisations (``gateway load --format organisations``), on each store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.access.index import ODS
from gateway.directory import (
    ODS_PARAM,
    Organisation,
    codes_named_in,
    look_up,
    shown,
)
from gateway.identifiers import ODS_SYSTEM
from gateway.interactions import write
from gateway.loading import load
from gateway.store import Store
from tests.support.acting import as_source

HEADER = "ods_code,name,kind,address\n"
GOOD = (
    'F99C02,Primrose Row Surgery,gp-practice,"3 Primrose Row, Camden, QC1 2AB"\n'
    "E09000007,Camden Council adult social care,council,\n"
    "R9A,Capital Ambulance Service NHS Trust,ambulance,\n"
)


def _csv(tmp_path: Path, body: str, name: str = "organisations.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


class _Counting:
    """A store whose statements are counted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.statements = 0

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        self.statements += 1
        return self._store.select(sql, params)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_the_directory_reads_the_row_the_access_index_writes() -> None:
    assert ODS_PARAM == ODS


def test_good_rows_load_as_organizations_the_directory_answers(
    store: Store, tmp_path: Path
) -> None:
    report = load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    assert (report.records, report.loaded, report.rejections) == (3, 3, [])
    found = look_up(store, ["f99c02", "E09000007", "R9A"])
    assert found["F99C02"] == Organisation(
        "F99C02", "Primrose Row Surgery", "GP practice", "3 Primrose Row, Camden, QC1 2AB"
    )
    assert found["E09000007"].kind == "Council"
    assert found["R9A"].label == "Capital Ambulance Service NHS Trust (R9A)"


def test_an_unknown_code_is_absent_and_shown_as_such(store: Store, tmp_path: Path) -> None:
    load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    found = look_up(store, ["Q9Q99"])
    assert found == {}
    assert shown("Q9Q99", found) == "Q9Q99 (organisation not in the directory)"
    assert shown("F99C02", look_up(store, ["F99C02"])) == "Primrose Row Surgery (F99C02)"


def test_a_deleted_organization_is_no_longer_known(store: Store, tmp_path: Path) -> None:
    load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    rows = store.select(
        "SELECT res_id FROM search_token WHERE res_type = 'Organization' AND param = ? "
        "AND code = ?",
        [ODS, "F99C02"],
    )
    write.delete(store, as_source("X9P01"), "Organization", str(rows[0][0]))
    assert "F99C02" not in look_up(store, ["F99C02", "R9A"])
    assert "R9A" in look_up(store, ["R9A"])


def test_many_codes_are_read_in_one_statement_per_page(store: Store, tmp_path: Path) -> None:
    load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    counting = _Counting(store)
    codes = ["F99C02", "E09000007", "R9A", *(f"Q{n:04d}" for n in range(300))]
    found = look_up(counting, codes)  # type: ignore[arg-type]
    assert sorted(found) == ["E09000007", "F99C02", "R9A"]
    assert counting.statements == 1
    counting.statements = 0
    look_up(counting, [f"Q{n:04d}" for n in range(1200)])  # type: ignore[arg-type]
    assert counting.statements == 3  # pages of 500
    counting.statements = 0
    assert look_up(counting, []) == {}  # type: ignore[arg-type]
    assert counting.statements == 0


def test_bad_rows_are_refused_each_with_its_line_and_reason(store: Store, tmp_path: Path) -> None:
    body = (
        "F99C01,Fleet Valley Medical Centre,gp-practice,\n"  # line 2: good
        ",No Code Surgery,gp-practice,\n"  # 3
        "F99C03,,gp-practice,\n"  # 4
        "F99C04,Somewhere,dentist,\n"  # 5
        "F9-9,Bad Code,council,\n"  # 6
        "F99C05,Too,many,fields,here\n"  # 7
        "F99C01,Fleet Valley again,gp-practice,\n"  # 8
        "V9C01,Heath View Care Home,care-home,\n"  # 9: good
    )
    report = load(store, "organisations", "X9P01", [_csv(tmp_path, body)])
    refused = [(r.record, r.reason) for r in report.rejections]
    assert refused == [
        ("line 3", "ods_code is empty"),
        ("line 4", "name is empty"),
        (
            "line 5",
            "kind 'dentist' is not one of "
            "gp-practice, council, care-home, hospital, ambulance, auditor, analytics",
        ),
        ("line 6", "ods_code 'F9-9' is not an ODS code (3 to 9 letters and digits)"),
        ("line 7", "5 fields where the header has 4"),
        ("line 8", "ODS code F99C01 is already on line 2 of this file"),
    ]
    assert report.loaded == 2
    assert sorted(look_up(store, ["F99C01", "F99C03", "F99C04", "V9C01"])) == ["F99C01", "V9C01"]
    assert look_up(store, ["F99C01"])["F99C01"].name == "Fleet Valley Medical Centre"
    # Nothing of a refused row was written.
    organizations = store.select(
        "SELECT count(*) FROM resource_current WHERE res_type = 'Organization'", []
    )
    assert organizations[0][0] == 2


def test_a_file_without_the_columns_is_refused_whole(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("code,title\nF99C01,Somewhere\n", encoding="utf-8")
    report = load(store, "organisations", "X9P01", [path])
    assert [(r.record, r.reason) for r in report.rejections] == [
        ("header (line 1)", "the header lacks the column(s) ods_code, name, kind")
    ]
    assert report.loaded == 0


def test_a_reload_changes_only_what_changed(store: Store, tmp_path: Path) -> None:
    load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    again = load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    assert (again.loaded, again.unchanged) == (0, 3)
    renamed = GOOD.replace("Primrose Row Surgery", "Primrose Row Health Centre")
    changed = load(store, "organisations", "X9P01", [_csv(tmp_path, renamed, "v2.csv")])
    assert (changed.loaded, changed.unchanged) == (1, 2)
    assert look_up(store, ["F99C02"])["F99C02"].name == "Primrose Row Health Centre"
    # Still one Organization for the code: the new name is its next version.
    rows = store.select(
        "SELECT count(*) FROM search_token WHERE res_type = 'Organization' AND param = ? "
        "AND code = ?",
        [ODS, "F99C02"],
    )
    assert rows[0][0] == 1


def test_the_codes_a_stored_resource_names_are_found_without_parsing() -> None:
    content = (
        b'{"meta":{"source":"urn:ods:F99C01"},"generalPractitioner":[{"identifier":'
        b'{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"f99c02"}}],'
        b'"x":{"value":"V9C01","system":"https://fhir.nhs.uk/Id/ods-organization-code"},'
        b'"y":{"system":"urn:other","value":"NOTME"}}'
    )
    assert codes_named_in([content, None]) == {"F99C01", "F99C02", "V9C01"}


def _practice_writes_itself(store: Store, name: str) -> None:
    """The practice's own record of itself, as a source sends it: a name and
    nothing of its kind or address."""
    write.create(
        store,
        as_source("F99C02"),
        "Organization",
        {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": "F99C02"}],
            "name": name,
        },
    )


def test_the_operators_entry_stands_over_a_sources_record_of_the_organisation(
    store: Store, tmp_path: Path
) -> None:
    load(store, "organisations", "X9P01", [_csv(tmp_path, GOOD)])
    _practice_writes_itself(store, "Primrose Row Surgery (Dr Okafor and partners)")
    assert look_up(store, ["F99C02"])["F99C02"] == Organisation(
        "F99C02", "Primrose Row Surgery", "GP practice", "3 Primrose Row, Camden, QC1 2AB"
    )


def test_without_an_operators_entry_the_last_written_answers_its_gaps_filled(
    store: Store, tmp_path: Path
) -> None:
    write.create(
        store,
        as_source("X9P01"),
        "Organization",
        {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": "F99C02"}],
            "name": "Primrose Row",
            "type": [{"text": "GP practice"}],
        },
    )
    _practice_writes_itself(store, "Primrose Row Surgery (Dr Okafor and partners)")
    found = look_up(store, ["F99C02"])["F99C02"]
    assert (found.name, found.kind) == (
        "Primrose Row Surgery (Dr Okafor and partners)",
        "GP practice",
    )
