"""The search parameters of each resource type in scope: the standard FHIR R4
ones (https://hl7.org/fhir/R4/searchparameter-registry.html) and the
Resource-level ``_id``, ``_lastUpdated``, ``_tag``, ``_profile``,
``_security`` and ``_source`` (https://hl7.org/fhir/R4/resource.html#search).

The definitions are FHIR's own SearchParameter resources (R4 4.0.1, CC0),
narrowed to the fields the search engine reads and stored in
``gateway/search/data/search_parameters_r4.json``; that file's header names
its source, and ``gateway/search/data/generate.py`` says how to rebuild it.
The file is read once, on first use; the errors found in the published
definitions are corrected then (``ERRATA``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

# https://hl7.org/fhir/R4/valueset-search-param-type.html
PARAMETER_TYPES = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
)
COMMON_BASE = "Resource"
_DATA_FILE = "search_parameters_r4.json"

# Errors in the published R4 definitions, corrected when they are loaded (the
# data file stays as published). url -> component code -> expression.
ERRATA: Mapping[str, Mapping[str, str]] = {
    # R4 4.0.1 gives the reference component ``relatesto`` the expression
    # ``code`` and the token component ``relation`` the expression ``target``,
    # the wrong way round; R5 pairs them as here
    # (https://hl7.org/fhir/R5/documentreference.html#search).
    "http://hl7.org/fhir/SearchParameter/DocumentReference-relationship": {
        "relatesto": "target",
        "relation": "code",
    },
    # R4 4.0.1 gives the token component ``value`` the bare expression
    # ``value``, which selects every type of ``characteristic.value[x]``
    # (Quantity, Range and Reference too, which a token cannot index), while
    # the parameter it names, Group-value, reads only CodeableConcept and
    # boolean; the component reads what its definition reads.
    "http://hl7.org/fhir/SearchParameter/Group-characteristic-value": {
        "value": "(value as CodeableConcept) | (value as boolean)",
    },
}


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter (SearchParameter.component): the
    ``code`` and ``type`` of the parameter its ``definition`` names, and its
    ``expression``, evaluated on each item the composite's expression gives."""

    code: str
    type: str
    expression: str
    definition: str


@dataclass(frozen=True, slots=True)
class SearchParameter:
    """A FHIR R4 SearchParameter (https://hl7.org/fhir/R4/searchparameter.html).

    ``expression`` is the published FHIRPath, verbatim: a parameter shared by
    several types (``clinical-patient``) has a branch per type, and
    ``gateway.search.extract`` keeps the branches of the type it indexes.
    ``base`` is narrowed to the types in scope (``("Resource",)`` for the
    Resource-level ones); ``targets`` is the spec's full list.
    """

    code: str
    type: str
    base: tuple[str, ...]
    expression: str
    url: str
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    description: str = ""
    multiple_or: bool | None = None
    multiple_and: bool | None = None
    comparators: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    # (base type, code system) where the parameter selects a ``code`` element
    # bound to one code system (the data file's ``codeSystem``).
    code_systems: tuple[tuple[str, str], ...] = ()

    def applies_to(self, res_type: str) -> bool:
        return COMMON_BASE in self.base or res_type in self.base

    def code_system(self, res_type: str) -> str | None:
        """The system of the codes this token parameter finds on ``res_type``
        in ``code`` elements, which carry none of their own."""
        return dict(self.code_systems).get(res_type)


def _parameter(raw: Mapping[str, Any]) -> SearchParameter:
    if raw["type"] not in PARAMETER_TYPES:
        raise ValueError(f"{raw['url']}: unknown search parameter type {raw['type']!r}")
    return SearchParameter(
        code=raw["code"],
        type=raw["type"],
        base=tuple(raw["base"]),
        expression=raw["expression"],
        url=raw["url"],
        targets=tuple(raw.get("target", ())),
        components=tuple(
            Component(
                c["code"],
                c["type"],
                ERRATA.get(raw["url"], {}).get(c["code"], c["expression"]),
                c["definition"],
            )
            for c in raw.get("component", ())
        ),
        description=raw.get("description", ""),
        multiple_or=raw.get("multipleOr"),
        multiple_and=raw.get("multipleAnd"),
        comparators=tuple(raw.get("comparator", ())),
        modifiers=tuple(raw.get("modifier", ())),
        code_systems=tuple(sorted(raw.get("codeSystem", {}).items())),
    )


@cache
def _data() -> Mapping[str, Any]:
    text = resources.files("gateway.search.data").joinpath(_DATA_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def all_parameters() -> tuple[SearchParameter, ...]:
    """Every definition in the data file, in url order."""
    return tuple(_parameter(raw) for raw in _data()["parameters"])


def source() -> Mapping[str, Any]:
    """Where the definitions came from (the data file's ``source`` header)."""
    return MappingProxyType(dict(_data()["source"]))


@cache
def resource_types() -> frozenset[str]:
    """The resource types the data file was generated for."""
    return frozenset(_data()["resourceTypes"])


@cache
def spec_resource_types() -> frozenset[str]:
    """Every type some R4 search parameter is defined on (``Resource`` and
    ``DomainResource`` included), in scope or not."""
    return frozenset(_data()["specResourceTypes"])


@cache
def _by_type() -> Mapping[str, Mapping[str, SearchParameter]]:
    common = [p for p in all_parameters() if COMMON_BASE in p.base]
    table: dict[str, Mapping[str, SearchParameter]] = {}
    for res_type in sorted(resource_types()):
        own: dict[str, SearchParameter] = {p.code: p for p in common}
        for param in all_parameters():
            if res_type in param.base:
                if param.code in own:
                    raise ValueError(f"{res_type} has two {param.code!r} search parameters")
                own[param.code] = param
        table[res_type] = MappingProxyType(dict(sorted(own.items())))
    return MappingProxyType(table)


_NONE: Mapping[str, SearchParameter] = MappingProxyType({})


def parameters_for(res_type: str) -> Mapping[str, SearchParameter]:
    """The search parameters of ``res_type`` by code, the Resource-level ones
    included; empty for a type not in scope."""
    return _by_type().get(res_type, _NONE)


def parameter(res_type: str, code: str) -> SearchParameter | None:
    """The parameter ``code`` of ``res_type``, or None if it has none."""
    return parameters_for(res_type).get(code)
