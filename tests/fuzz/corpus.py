"""The fuzzers' seed corpus: each target's seeds from the test fixtures
(``tests/fixtures/``) and from the source files of a small synthetic London
(``gateway.demo.generate``), one file per seed, named by its digest, under
``OUT/<target>/``. Nothing here is committed: it is made again at each run
(in well under a second).

``python -m tests.fuzz.corpus [OUT]`` (default ``var/fuzz/seeds``).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import tempfile
from datetime import date
from pathlib import Path

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULT_OUT = ROOT / "var" / "fuzz" / "seeds"
# A small London, always the same: enough people for every kind of record
# (and the demo's planted defects), few enough to keep seeds few.
PEOPLE, SEED, TODAY = 60, 7, date(2026, 12, 1)


def build(out: Path) -> dict[str, int]:
    """Each target's seeds written under ``out/<target>/``; how many each."""
    from gateway.demo.generate import generate

    written: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-demo-") as scratch:
        demo = Path(scratch)
        generate(demo, PEOPLE, SEED, TODAY)
        for name in TARGETS:
            target = importlib.import_module(f"tests.fuzz.targets.{name}")
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            digests = set()
            for data in target.seeds(FIXTURES, demo):
                digest = hashlib.sha1(data).hexdigest()
                digests.add(digest)
                (folder / f"seed-{digest}").write_bytes(data)
            written[name] = len(digests)
    return written


if __name__ == "__main__":
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for name, count in build(where).items():
        print(f"{name}: {count} seeds in {where / name}")
