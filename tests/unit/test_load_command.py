"""``gateway load``: what the integration engineer is told after a load."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from gateway.cli import main

CARE_HOME = Path(__file__).resolve().parents[1] / "fixtures" / "carehome"


def test_an_export_older_than_the_one_loaded_is_counted_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backlog loaded after a newer export changes nothing, and the
    summary says why rather than leaving it among the records sent again."""
    export = json.loads((CARE_HOME / "winifred-maddox.json").read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**export, "exportedAt": "2026-07-15T09:00:00+01:00"}))
    database = ["--database-url", f"sqlite:///{tmp_path / 'gateway.db'}"]
    common = ["load", *database, "--format", "care-home", "--source-org", "VM4X2"]
    assert main([*common, str(newer)]) == 0
    capsys.readouterr()
    assert main([*common, str(CARE_HOME / "winifred-maddox.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [
        line.split()[:3] for line in lines if line.split()[:1] in (["loaded"], ["already"])
    ] == [
        ["loaded", "0"],
        ["already", "loaded", "1"],
    ]
    assert any(line.split()[:4] == ["of", "them", "older", "1"] for line in lines)


def test_a_load_keeps_what_was_there_before_out_of_full_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gateway load`` loads with what the process held before frozen
    (out of the collector's full scans), and gives it back after, so a
    process that goes on (a test session) collects as before."""
    from gateway.loading import commands

    frozen_during: list[int] = []

    def load(*args: object, **kwargs: object) -> None:
        frozen_during.append(gc.get_freeze_count())

    monkeypatch.setattr(commands, "load", load)
    export = tmp_path / "export.json"
    export.write_text((CARE_HOME / "winifred-maddox.json").read_text())
    database = ["--database-url", f"sqlite:///{tmp_path / 'gateway.db'}"]
    common = ["load", *database, "--format", "care-home", "--source-org", "VM4X2"]
    before = gc.get_freeze_count()
    assert main([*common, str(export)]) == 0
    assert frozen_during and frozen_during[0] > before
    assert gc.get_freeze_count() == before
