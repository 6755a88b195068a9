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

UK Core profiles
----------------
The same Patient and Observation claiming a profile in ``meta.profile``,
``validate_resource`` timed the same way three ways: claiming nothing (the
write path's usual case), claiming R4's own definition of the type (which
costs the claim's own validation and the check that it needs nothing
more), and claiming its UK Core profile (``conformance.profiles``); the
Patient as the mappings write one, with an NHS number that passes Modulus
11, its verification status and an ethnic category. "profile" is UK Core
less R4's claim: what checking the profile costs.
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


UK_CORE = "https://fhir.hl7.org.uk/"


def uk_core_patient(n: int) -> dict[str, Any]:
    """The benchmark's Patient as the mappings write one under UK Core."""
    resource = patient(n)
    resource["identifier"] = [
        {
            "system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": "9990000018",
            "extension": [
                {
                    "url": UK_CORE
                    + "StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": UK_CORE
                                + "CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                                "code": "01",
                            }
                        ]
                    },
                }
            ],
        }
    ]
    resource["extension"] = [
        {
            "url": UK_CORE + "StructureDefinition/Extension-UKCore-EthnicCategory",
            "valueCodeableConcept": {
                "coding": [
                    {"system": UK_CORE + "CodeSystem/UKCore-EthnicCategoryEngland", "code": "A"}
                ]
            },
        }
    ]
    return resource


def measure_profiles(
    res_type: str, resource: dict[str, Any], rounds: int, repeat: int
) -> dict[str, float]:
    """``validate_resource`` of ``resource`` claiming nothing, R4's own
    definition and its UK Core profile, taking turns round by round."""
    claims = {
        "none": None,
        "r4": f"http://hl7.org/fhir/StructureDefinition/{res_type}",
        "ukcore": f"{UK_CORE}StructureDefinition/UKCore-{res_type}",
    }
    variants = {}
    for name, claim in claims.items():
        variant = dict(resource)
        if claim is not None:
            variant["meta"] = {"profile": [claim]}
        if validate_resource(variant, res_type):
            raise SystemExit(f"the benchmark's {res_type} claiming {claim} is not valid")
        variants[name] = variant
    ways: dict[str, Callable[[], Any]] = {
        name: (lambda v=variant: validate_resource(v, res_type))
        for name, variant in variants.items()
    }
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
    print()
    print("UK Core profiles: validate_resource of the resource claiming ...")
    print(f"{'resource':<12} {'nothing µs':>11} {'R4 µs':>8} {'UK Core µs':>11} {'profile µs':>11}")
    for res_type, resource in (
        ("Patient", uk_core_patient(7)),
        ("Observation", observation(7, "urn:uuid:0b5c2a42-0000-4000-8000-000000000007")),
    ):
        figures = measure_profiles(res_type, resource, args.rounds, args.repeat)
        print(
            f"{res_type:<12} {figures['none']:>11.1f} {figures['r4']:>8.1f} "
            f"{figures['ukcore']:>11.1f} {figures['ukcore'] - figures['r4']:>11.1f}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
