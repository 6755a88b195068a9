"""``make fuzz``'s atheris half: each target for ``--seconds`` (default 600),
one after the other, from a corpus that persists between runs.

- ``var/fuzz/seeds/<target>/``: the seeds, made afresh (``corpus.py``);
- ``var/fuzz/corpus/<target>/``: what the fuzzer found that reaches new
  code, kept and grown run after run (delete it to start over);
- ``var/fuzz/crashes/<target>/``: each crashing input (libFuzzer's
  ``crash-<sha1>``), to be copied into ``tests/fuzz/crashes/<target>/``
  with a regression test once fixed (docs/fuzzing.md).

``python -m tests.fuzz.long [--seconds N] [--targets hl7v2,cld,...]``; exits
1 when any target crashed.
"""

from __future__ import annotations

import argparse
import sys

from tests.fuzz.corpus import ROOT, build
from tests.fuzz.targets import TARGETS
from tests.fuzz.test_parsers import CRASHES, fuzz

VAR = ROOT / "var" / "fuzz"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.long", description=__doc__)
    parser.add_argument("--seconds", type=int, default=600, help="per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args(argv)
    build(VAR / "seeds")
    crashed = []
    for target in args.targets.split(","):
        corpus = VAR / "corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        dirs = [corpus, VAR / "seeds" / target]
        if (CRASHES / target).is_dir():
            dirs.append(CRASHES / target)
        print(f"fuzzing {target} for {args.seconds} s (corpus {corpus})", flush=True)
        found = fuzz(target, dirs, VAR / "crashes" / target, args.seconds, seed=0)
        if found:
            crashed.append(target)
            print(found, flush=True)
    if crashed:
        print(f"crashed: {', '.join(crashed)}; inputs in {VAR / 'crashes'}", file=sys.stderr)
        return 1
    print("no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
