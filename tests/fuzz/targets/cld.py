"""Councils' CLD returns: ``read_rows`` and ``map_row`` as ``gateway load
--format cld`` runs them. A header that cannot be read is refused
(``UnreadableReturn``, the whole file's one rejection), a row with a
problem or that cannot be mapped (``Unmappable``) is that line's
rejection; nothing else escapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.targets._loading import read_all, seed

DEFAULT_SOURCE = "E09000007"


def check(data: bytes) -> None:
    read_all("cld", data, DEFAULT_SOURCE)


def _council(path: Path) -> str:
    return path.name.split("-")[0] if path.name.startswith("E0") else "E09000022"


def seeds(fixtures: Path, demo: Path) -> Iterator[bytes]:
    for path in sorted((fixtures / "cld").glob("*.csv")):
        yield seed(_council(path), path.read_bytes())
    for path in sorted((demo / "council").glob("*.csv")):
        header, *rows = path.read_bytes().splitlines(keepends=True)
        # Each council's header (they drift) with a few rows at a time.
        for start in range(0, min(len(rows), 30), 3):
            yield seed(_council(path), header + b"".join(rows[start : start + 3]))
