"""``gateway load``: what the integration engineer is told after a load."""

from __future__ import annotations

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
