"""Cost of the R4 invariants compiled by ``conformance.fhirpath``: every
invariant that applies to the repository's R4 example Patient and Observation
(``tests/fixtures/r4``), at every element it sits on.

Run ``python -m bench.fhirpath`` (``--help`` for the options).

Method
------
The resource is walked element by element (``bench._fhir_elements``: each
element's type from fhirpathpy's R4 model tables) and every invariant of the
fixture that sits on the element's type or path is paired with it: ele-1 at
every element, ext-1 at every extension, per-1 at every Period, ref-1 at every
Reference, txt-1/txt-2 at the narrative, the resource's own at its root. Each
expression is compiled once, before timing; then all the pairs are evaluated
with ``Expression.holds`` ``--repeat`` times, and the best of ``--rounds``
rounds is kept (the figure least disturbed by the rest of the machine). The
walk itself is not timed.

It prints microseconds per evaluation overall and per invariant key, and per
resource. With ``--oracle`` it times fhirpathpy (compiled once too) on the
same pairs, for scale.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._fhir_elements import Site, checks
from conformance import fhirpath
from conformance.fhirpath import Expression

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "r4"


def _pairs(resource: dict[str, Any]) -> list[tuple[str, Expression, Site]]:
    return [
        (invariant.key, fhirpath.compile(invariant.expression), site)
        for invariant, site in checks(resource)
    ]


def _time(pairs: list[tuple[str, Expression, Site]], repeat: int, rounds: int) -> float:
    """Best seconds for one pass over every pair."""
    best = float("inf")
    work = [(e, s.value, s.resource, s.root) for _, e, s in pairs]
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            for expression, value, resource, root in work:
                expression.holds(value, resource, root)
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def _per_key(
    pairs: list[tuple[str, Expression, Site]], repeat: int
) -> dict[str, tuple[int, float]]:
    seconds: dict[str, list[float]] = defaultdict(list)
    for key, expression, site in pairs:
        start = time.perf_counter()
        for _ in range(repeat):
            expression.holds(site.value, site.resource, site.root)
        seconds[key].append((time.perf_counter() - start) / repeat)
    return {k: (len(v), sum(v) / len(v)) for k, v in sorted(seconds.items())}


def _oracle(pairs: list[tuple[str, Expression, Site]], repeat: int) -> float:
    import fhirpathpy
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.models import models

    from conformance.fhirpath import Primitive

    functions = {
        "hasValue": {"fn": lambda items: [len(items) == 1 and not isinstance(items[0], dict)]},
        "htmlChecks": {"fn": lambda items: [True]},
    }
    compiled = {}
    work = []
    for _, expression, site in pairs:
        text = expression.text.replace(".as(", ".ofType(").replace("where(as(", "where(ofType(")
        if text not in compiled:
            compiled[text] = fhirpathpy.compile(
                text,
                model=models["r4"],
                options={"userInvocationTable": functions, "traceFn": lambda *_: None},
            )
        value = site.value.value if isinstance(site.value, Primitive) else site.value
        node = ResourceNode.create_node(value, site.type_path)
        work.append((compiled[text], node, {"resource": site.resource, "rootResource": site.root}))
    start = time.perf_counter()
    for _ in range(repeat):
        for function, node, context in work:
            function(node, context)
    return (time.perf_counter() - start) / repeat


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fhirpath", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=2000, help="passes per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is kept")
    parser.add_argument("--oracle", action="store_true", help="also time fhirpathpy")
    parser.add_argument(
        "--types", nargs="+", default=["Patient", "Observation"], help="examples to run"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    for name in options.types:
        resource = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
        pairs = _pairs(resource)
        seconds = _time(pairs, options.repeat, options.rounds)
        keys = {key for key, _, _ in pairs}
        print(
            f"{name}: {len(pairs)} evaluations of {len(keys)} invariants, "
            f"{seconds * 1e6:.1f} µs per resource, "
            f"{seconds / len(pairs) * 1e6:.2f} µs per evaluation"
        )
        for key, (count, mean) in _per_key(pairs, max(options.repeat // 4, 1)).items():
            print(f"  {key:8} x{count:<4} {mean * 1e6:6.2f} µs")
        if options.oracle:
            oracle = _oracle(pairs, max(options.repeat // 100, 1))
            print(
                f"  fhirpathpy: {oracle * 1e6:.0f} µs per resource, "
                f"{oracle / len(pairs) * 1e6:.1f} µs per evaluation "
                f"({oracle / seconds:.0f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
