"""A structure-aware mutator for the JSON targets (GP Connect, care home):
half the time, one to three values of the record (after its first line,
the source) are replaced by a JSON value of another kind, deleted,
duplicated or copied from elsewhere in the record, so that the fuzzer tries
wrong shapes that byte flips seldom make; otherwise libFuzzer's own
mutation of the bytes.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import atheris  # type: ignore[import-untyped]

_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64,
    1e308,
    1.5,
    "",
    "x",
    "\x00",
    "\ud800",
    "9999-99-99",
    "2026-01-01T00:00:00Z",
    [],
    {},
    [None],
    [{}],
    {"reference": "#x"},
    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"},
]


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*at, index))
    return found


def _mutate_json(document: Any, rng: random.Random) -> Any:
    for _ in range(rng.randint(1, 3)):
        places = [p for p in _places(document) if p]
        if not places:
            return rng.choice(_VALUES)
        place = rng.choice(places)
        parent = document
        for step in place[:-1]:
            parent = parent[step]
        key = place[-1]
        kind = rng.randrange(4)
        if kind == 0:
            parent[key] = copy.deepcopy(rng.choice(_VALUES))
        elif kind == 1:
            del parent[key]
        elif kind == 2 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            donor = document
            for step in rng.choice(places):
                donor = donor[step]
            parent[key] = copy.deepcopy(donor)
    return document


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        mutated: bytes = atheris.Mutate(data, max_size)
        return mutated
    source, newline, body = data.partition(b"\n")
    try:
        document = json.loads(body if newline else data)
    except ValueError:
        mutated = atheris.Mutate(data, max_size)
        return mutated
    text = json.dumps(_mutate_json(document, rng)).encode()
    result = source + b"\n" + text if newline else text
    if len(result) > max_size:
        mutated = atheris.Mutate(data, max_size)
        return mutated
    return result
