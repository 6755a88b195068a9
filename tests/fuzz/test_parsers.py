"""The parsers fuzzed with atheris (coverage-guided), a bounded pass each:
the HL7 v2, CLD, GP Connect and care-home source formats as ``gateway
load`` reads them, and the search parameters as a search request parses
and runs them (``tests/fuzz/targets/``).

Each target runs in its own process for ``GATEWAY_FUZZ_SECONDS`` (default
12) from the seed corpus (``tests/fuzz/corpus.py``, made afresh in a
scratch directory) with a fixed seed. A crash fails the test with the input
that crashed; ``make fuzz`` runs them for longer (docs/fuzzing.md).

Every crash found is kept in ``tests/fuzz/crashes/<target>/`` (and becomes a
regression test beside the parser's own tests): each is replayed here, and
seeds the fuzzer too.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.corpus import ROOT, build
from tests.fuzz.targets import TARGETS

SECONDS = int(os.environ.get("GATEWAY_FUZZ_SECONDS", "12"))
CRASHES = Path(__file__).resolve().parent / "crashes"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-seeds")
    build(out)
    return out


def fuzz(target: str, corpus: list[Path], artifacts: Path, seconds: int, seed: int = 1) -> str:
    """Run ``target`` under atheris for ``seconds`` (``seed`` 0: a random
    one); the crash it found, as a message with its input, or ``""``."""
    artifacts.mkdir(parents=True, exist_ok=True)
    earlier = set(artifacts.iterdir())
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.run",
        target,
        f"-max_total_time={seconds}",
        f"-seed={seed}",
        "-timeout=20",
        "-rss_limit_mb=3072",
        f"-artifact_prefix={artifacts}/",
        *map(str, corpus),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds * 5 + 120
    )
    found = sorted(set(artifacts.iterdir()) - earlier)
    if done.returncode == 0 and not found:
        return ""
    inputs = "\n".join(f"{path.name}: {path.read_bytes()[:4000]!r}" for path in found)
    log = "\n".join(
        line
        for line in (done.stdout + done.stderr).splitlines()
        if not line.startswith(("#", "INFO:", "WARNING: Failed to find function"))
    )
    return (
        f"fuzzing {target} crashed (exit {done.returncode}); keep the input in "
        f"tests/fuzz/crashes/{target}/ and add a regression test (docs/fuzzing.md).\n"
        f"{inputs}\n{log[-6000:]}"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_a_bounded_fuzzing_pass_finds_no_crash(target: str, seeds: Path, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    corpus = [work, seeds / target]
    if (CRASHES / target).is_dir():
        corpus.append(CRASHES / target)
    crash = fuzz(target, corpus, tmp_path / "crashes", SECONDS)
    if crash:
        pytest.fail(crash, pytrace=False)


@pytest.mark.parametrize(
    "path",
    sorted(CRASHES.glob("*/*")),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_every_crash_found_is_fixed(path: Path) -> None:
    target = importlib.import_module(f"tests.fuzz.targets.{path.parent.name}")
    target.check(path.read_bytes())
