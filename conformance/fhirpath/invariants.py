"""The invariants of the R4 base resources and data types, as extracted from
the specification into ``r4-invariants.json`` (see ``README.md``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Invariant:
    """One constraint of the specification. ``paths`` lists the element paths
    that carry it, by the StructureDefinition they were read from
    (``{"Patient": ("Patient.contact",)}``); ``source`` names the definition
    that declares it (``Element`` for ele-1, ``DomainResource`` for dom-2)."""

    key: str
    severity: str  # error | warning
    human: str
    expression: str
    source: str
    paths: Mapping[str, tuple[str, ...]]


def _invariant(entry: dict[str, Any]) -> Invariant:
    return Invariant(
        key=entry["key"],
        severity=entry["severity"],
        human=entry["human"],
        expression=entry["expression"],
        source=entry["source"],
        paths={name: tuple(paths) for name, paths in entry["paths"].items()},
    )


@cache
def fixture() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("r4-invariants.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def load_invariants() -> tuple[Invariant, ...]:
    """Every invariant, once per (key, expression)."""
    return tuple(_invariant(entry) for entry in fixture()["invariants"])
