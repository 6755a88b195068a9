"""``gateway serve`` limits glibc's malloc arenas in itself and in the worker
processes it starts, unless the deployment chose a number (issue 30: a
worker's per-thread arenas kept growing under a long mixed load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway import cli


def test_serve_sets_two_arenas_for_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cli._fewer_malloc_arenas()
    assert cli.os.environ["MALLOC_ARENA_MAX"] == "2"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['MALLOC_ARENA_MAX'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "2"  # what a spawned worker reads as it starts


def test_a_deployment_s_own_number_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    cli._fewer_malloc_arenas()
    assert cli.os.environ["MALLOC_ARENA_MAX"] == "4"
