"""What every ``gateway`` command sets up before it runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from consent.labels import code_lists, use_code_lists
from gateway import cli
from gateway.auth.commands import CommandError

SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def test_a_command_labels_with_the_lists_the_server_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gateway load`` and ``gateway mllp`` write records too: with
    GATEWAY_RESTRICTED_CODES set, they label from that file, not the
    shipped lists; a file that cannot be used stops the command."""
    own = tmp_path / "codes.json"
    own.write_text(
        json.dumps(
            {
                "systems": {"snomed": [SNOMED], "icd10": []},
                "lists": [
                    {"label": {"system": ACT_CODE, "code": "SDV"}, "snomed": {"195967001": "t"}}
                ],
            }
        )
    )
    monkeypatch.setenv("GATEWAY_RESTRICTED_CODES", str(own))
    try:
        cli._settings(argparse.Namespace())
        assert code_lists().labels_for([(SNOMED, "195967001")]) == {(ACT_CODE, "SDV")}
        assert code_lists().labels_for([(SNOMED, "35489007")]) == frozenset()
        own.write_text("{}")
        with pytest.raises(CommandError, match="restricted code lists"):
            cli._settings(argparse.Namespace())
    finally:
        use_code_lists(None)
