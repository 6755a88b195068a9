"""Run one fuzz target under atheris: ``python -m tests.fuzz.run TARGET
[libFuzzer flags] [CORPUS_DIR...]``, e.g. ``python -m tests.fuzz.run hl7v2
-max_total_time=600 var/fuzz/corpus/hl7v2 var/fuzz/seeds/hl7v2``.

The target's parsers are imported under atheris' instrumentation, so the
fuzzer is guided by their coverage. An exception from ``check`` is a crash:
libFuzzer writes the input to ``-artifact_prefix`` and exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import atheris  # type: ignore[import-untyped]

from tests.fuzz.targets import INSTRUMENT, TARGETS


def load(name: str) -> ModuleType:
    """The target ``name``, its parsers instrumented."""
    if name not in TARGETS:
        raise SystemExit(f"no fuzz target {name!r}; the targets are {', '.join(TARGETS)}")
    with atheris.instrument_imports(include=list(INSTRUMENT[name])):
        return importlib.import_module(f"tests.fuzz.targets.{name}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    target = load(argv[1])
    mutator = getattr(target, "MUTATOR", None)
    atheris.Setup([argv[0], *argv[2:]], target.check, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
