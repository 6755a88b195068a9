"""Speed of validation (issue 26's target): full validation by the validator
generated from the R4 StructureDefinitions, every base invariant included
(``conformance.validation.validate_resource``, what the write paths run), at
least 3 times as fast as the previous fhir.resources model validation alone.

Run ``python -m bench.validation`` (``--help`` for the options).

Method
------
The resources are the benchmark's: the Patient and the Observation that
``bench.rest_core`` creates and sends in its transactions. For each, in one
process and back to back, three ways of validating it:

  new      ``conformance.validation.validate_resource(resource, type)``:
           structure, cardinality, types and formats, bindings, references,
           contained rules and every base invariant (FHIRPath, compiled);
  shape    ``conformance.validator.validate(resource, type)``: the same
           without the FHIRPath invariants;
  model    ``conformance.r4b._model(type).model_validate(resource)``:
           fhir.resources' R4B pydantic model alone;
  before   ``conformance.r4b.validate_resource``: the model and the
           gateway's own checks around it (what the write paths ran before).

Each is warmed up (tables compiled, models built), then timed in ``--rounds``
rounds of ``--repeat`` calls, the four taking turns round by round so that a
busy moment of the machine falls on all of them; the figure is the median
round's time per call, in microseconds. The ratio is model over new.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.rest_core import observation, patient
from conformance import r4b
from conformance.r4b import _model
from conformance.validation import validate_resource
from conformance.validator import validate, warm_up

TARGET_RATIO = 3.0


def per_call_us(work: Callable[[], Any], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat * 1e6


def measure(res_type: str, resource: dict[str, Any], rounds: int, repeat: int) -> dict[str, float]:
    model = _model(res_type)
    ways: dict[str, Callable[[], Any]] = {
        "new": lambda: validate_resource(resource, res_type),
        "shape": lambda: validate(resource, res_type),
        "model": lambda: model.model_validate(resource),
        "before": lambda: r4b.validate_resource(resource, res_type),
    }
    if validate_resource(resource, res_type) or r4b.validate_resource(resource, res_type):
        raise SystemExit(f"the benchmark's {res_type} is not valid")
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for work in ways.values():
        per_call_us(work, repeat)  # warm-up
    for _ in range(rounds):
        for name, work in ways.items():
            samples[name].append(per_call_us(work, repeat))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per way (default 15)")
    parser.add_argument("--repeat", type=int, default=1000, help="calls per round (default 1000)")
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    print(f"compiling every R4 type's tables: {(time.perf_counter() - started) * 1000:.0f} ms")
    print(
        f"{'resource':<12} {'new µs':>8} {'shape µs':>9} {'model µs':>9} {'before µs':>10} "
        f"{'model/new':>10}"
    )
    ratios = []
    for res_type, resource in (
        ("Patient", patient(7)),
        ("Observation", observation(7, "urn:uuid:0b5c2a42-0000-4000-8000-000000000007")),
    ):
        figures = measure(res_type, resource, args.rounds, args.repeat)
        ratio = figures["model"] / figures["new"]
        ratios.append(ratio)
        print(
            f"{res_type:<12} {figures['new']:>8.1f} {figures['shape']:>9.1f} "
            f"{figures['model']:>9.1f} {figures['before']:>10.1f} {ratio:>9.1f}x"
        )
    met = min(ratios) >= TARGET_RATIO
    verdict = "met" if met else "MISSED"
    print(f"target: new at least {TARGET_RATIO:.0f}x as fast as the model alone: {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
