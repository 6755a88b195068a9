"""Mapped ids are keyed with the deployment's secret (``mappings.identity``):
nobody without it can compute one, and every mapped id, in every format, is
its basis (the id as it was before ids were keyed) keyed. That last is what
lets a store written before move each id to its keyed form alone
(``gateway.loading.ids``) and then load on as if it had always been keyed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.generate import generate
from gateway.loading.sources import READERS
from mappings.hl7v2.adt import map_adt
from mappings.hl7v2.parser import parse_message
from mappings.identity import NoIdKey, id_basis, keyed_id, mapped_id, use_id_key
from tests.support.ids import BASIS, TEST_ID_KEY, rekeyed, unkeyed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Each fixture source file: its format and the organisation that sends it.
SOURCES = [
    ("hl7v2", "RKE", "hl7v2/admit.hl7"),
    ("hl7v2", "RKE", "hl7v2/discharge-and-errors.hl7"),
    ("cld", "713", "cld/return.csv"),
    ("cld", "713", "cld/drift.csv"),
    ("gp-connect", "F84003", "gpconnect/structured-records.ndjson"),
    ("gp-connect", "F84003", "gpconnect/structured-rich.json"),
    ("gp-connect", "F84003", "gpconnect/structured-dissent.json"),
    ("care-home", "VM4X2", "carehome/export.ndjson"),
]
NHS_NUMBER = "9990000018"
OTHER_KEY = bytes(range(32))


def _records(fmt: str, source: str, path: Path) -> list[dict[str, Any]]:
    """Every record of a source file as the loader reads it (what it maps,
    whom it is about, what it merges, cancels, labels and gathers)."""
    with path.open("rb") as stream:
        return [asdict(record) for record in READERS[fmt](stream, source)]


def _every_id_is_its_basis_keyed(fmt: str, source: str, path: Path) -> int:
    """Checks a source file; returns how many of its records map."""
    with unkeyed() as bases:
        before = _records(fmt, source, path)
    after = _records(fmt, source, path)
    assert after == rekeyed(before, bases)
    left = set(BASIS.findall(repr(after))) & bases
    assert not left, f"a basis (which anyone can compute) left in what was mapped: {left}"
    return sum(1 for record in after if record["resources"])


@pytest.mark.parametrize(("fmt", "source", "name"), SOURCES)
def test_every_mapped_id_is_its_basis_keyed(fmt: str, source: str, name: str) -> None:
    """Mapped with the key, every id, reference, identifier and ledger note
    of a fixture is what it was mapped to before ids were keyed, each basis
    keyed: what the migration makes of a store written before."""
    assert _every_id_is_its_basis_keyed(fmt, source, FIXTURES / name) > 0


def test_every_id_the_demo_sources_map_to_is_its_basis_keyed(tmp_path: Path) -> None:
    """The same over the synthetic London's every format, with the people
    it plants: carers, residents, merges, stays, people without NHS numbers."""
    manifest = generate(tmp_path, 60, seed=11, today=date(2026, 1, 5))
    mapped: Counter[str] = Counter()
    for source in manifest.files:
        path = tmp_path / source.path
        mapped[source.format] += _every_id_is_its_basis_keyed(
            source.format, source.source_org, path
        )
    assert set(mapped) == set(READERS) and min(mapped.values()) > 0, mapped


def test_an_id_is_a_uuid_of_version_8_made_from_its_basis() -> None:
    made = mapped_id("NHS", "Patient", NHS_NUMBER)
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 8  # "custom" (RFC 9562)
    assert parsed.variant == uuid.RFC_4122
    assert made == keyed_id(id_basis("NHS", "Patient", NHS_NUMBER))
    assert uuid.UUID(id_basis("NHS", "Patient", NHS_NUMBER)).version == 5


def test_an_outsider_cannot_compute_a_patient_id_from_an_nhs_number() -> None:
    """What anyone can compute from an NHS number (the basis: the gateway's
    namespace is in its source) is not the id; and two deployments with
    their own keys give one person different ids."""
    outsider = id_basis("NHS", "Patient", NHS_NUMBER)
    ours = mapped_id("NHS", "Patient", NHS_NUMBER)
    use_id_key(OTHER_KEY)
    theirs = mapped_id("NHS", "Patient", NHS_NUMBER)
    assert len({outsider, ours, theirs}) == 3
    assert mapped_id("NHS", "Patient", NHS_NUMBER) == theirs  # the same, every time
    use_id_key(TEST_ID_KEY)
    assert mapped_id("NHS", "Patient", NHS_NUMBER) == ours


def test_nothing_is_mapped_without_a_key() -> None:
    """No silent default: without the deployment's key, mapping refuses."""
    use_id_key(None)
    with pytest.raises(NoIdKey, match="use_id_key"):
        mapped_id("NHS", "Patient", NHS_NUMBER)
    text = (FIXTURES / "hl7v2" / "admit.hl7").read_text("latin-1").split("MSH|")[1]
    with pytest.raises(NoIdKey):
        map_adt(parse_message("MSH|" + text), "RKE")


def test_a_key_too_short_to_be_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        use_id_key(b"short")
