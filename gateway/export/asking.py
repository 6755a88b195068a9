"""What a bulk export kick-off asks for (FHIR Bulk Data Access v2.0,
https://hl7.org/fhir/uv/bulkdata/export.html#query-parameters), read and
checked before the export is accepted: whatever is wrong with it is
answered at once, with a 400 naming the parameter, never after the wait.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from conformance.registry import RESOURCES, TypeInteraction
from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.query import SearchQuery, parse_search

SYSTEM = "system"
PATIENT = "patient"
GROUP = "group"
# The type an export of a cohort names its people by.
COHORT_TYPE = "Group"

NDJSON = "application/fhir+ndjson"
# What ``_outputFormat`` may say: the spec's abbreviations for NDJSON.
_NDJSON_NAMES = frozenset({NDJSON, "application/ndjson", "ndjson"})

# Never exported: the audit log is for auditors, a Subscription is a
# subscriber's own settings.
NEVER = frozenset({"AuditEvent", "Subscription"})
# Exported only when ``_type`` names them: a person's privacy Consents and
# the Provenance of every write are the gateway's own bookkeeping, not data
# a population health team analyses; a Group is a cohort definition, and the
# only ones an analytics team may see are its own.
ON_REQUEST = frozenset({"Consent", "Provenance", "Group"})

# A project names the pseudonym key an export's people are keyed with.
DEFAULT_PROJECT = "default"
_PROJECT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ELEMENT = re.compile(r"(?:([A-Z][A-Za-z]{0,63})\.)?([a-z][A-Za-z0-9]{0,63})")
# A comma starts another query only where a type and "?" follow it: a comma
# inside a query (alternatives of a value) is the query's own.
_QUERY_START = re.compile(r",(?=[A-Z][A-Za-z]*\?)")
# Search parameters that shape a result page, not what matches: a filter
# does not take them.
_NOT_FILTERS = frozenset(
    {
        "_include",
        "_revinclude",
        "_sort",
        "_count",
        "_summary",
        "_elements",
        "_total",
        "_contained",
        "_containedType",
        "_cursor",
        "_format",
    }
)
_PARAMETERS = frozenset(
    {"_outputFormat", "_since", "_type", "_typeFilter", "_elements", "project", "_format"}
)


def _bad(name: str, message: str, code: str) -> InvalidRequest:
    return InvalidRequest(
        f"$export {name}: {message}",
        code=code,
        issues=[Issue("value", f"$export {name}: {message}", (name,))],
    )


@dataclass(frozen=True)
class ExportAsk:
    """One kick-off's parameters, as the job keeps them."""

    level: str  # SYSTEM, PATIENT or GROUP
    types: tuple[str, ...]
    since: str | None = None  # FHIR instant: resources last updated after it
    # By type, the queries (``_typeFilter``) any of which a resource matches.
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Elements kept (``_elements``): by type, and for every type (key "").
    elements: dict[str, tuple[str, ...]] = field(default_factory=dict)
    project: str = DEFAULT_PROJECT
    group: str | None = None  # the Group whose members a GROUP export covers

    def to_json(self) -> bytes:
        return fhirjson.dumps(
            {
                "level": self.level,
                "types": list(self.types),
                "since": self.since,
                "filters": {t: list(q) for t, q in self.filters.items()},
                "elements": {t: list(e) for t, e in self.elements.items()},
                "project": self.project,
                "group": self.group,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> ExportAsk:
        data: dict[str, Any] = fhirjson.loads(raw.encode())
        return cls(
            level=data["level"],
            types=tuple(data["types"]),
            since=data["since"],
            filters={t: tuple(q) for t, q in data["filters"].items()},
            elements={t: tuple(e) for t, e in data["elements"].items()},
            project=data["project"],
            group=data.get("group"),
        )

    def queries(self, res_type: str) -> list[SearchQuery]:
        """The searches that find what ``res_type`` exports: each filter's,
        or all of the type, each since ``since``."""
        since = [("_lastUpdated", f"gt{self.since}")] if self.since else []
        filters = self.filters.get(res_type) or ("",)
        return [
            parse_search(res_type, [*parse_qsl(text, keep_blank_values=True), *since])
            for text in filters
        ]

    def kept_elements(self, res_type: str) -> frozenset[str]:
        """The elements ``_elements`` keeps of ``res_type``; empty: all."""
        if not self.elements:
            return frozenset()
        return frozenset(self.elements.get("", ()) + self.elements.get(res_type, ()))


def exportable(level: str) -> tuple[str, ...]:
    """The types an export of ``level`` covers when ``_type`` names none:
    every type for the system; the Patient compartment's for patients (all
    of them, or a Group's)."""
    return tuple(
        t
        for t, support in RESOURCES.items()
        if support.supports(TypeInteraction.SEARCH_TYPE)
        and t not in NEVER
        and t not in ON_REQUEST
        and (level == SYSTEM or t == "Patient" or t in PATIENT_COMPARTMENT)
    )


def parse_ask(
    level: str,
    params: Sequence[tuple[str, str]],
    *,
    searchable: Collection[str],
    group: str | None = None,
) -> ExportAsk:
    """The export ``params`` ask for, at ``level`` (of the Group ``group``),
    of the types the requester may search (``searchable``). Raises
    ``InvalidRequest`` for a parameter this server does not take or a value
    it cannot honour."""
    for name, _ in params:
        if name not in _PARAMETERS:
            raise _bad(
                name,
                "is not a parameter this server's $export takes (it takes _outputFormat, "
                "_since, _type, _typeFilter, _elements and project)",
                "GW-0701",
            )
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    for name in ("_outputFormat", "_since", "project"):
        if len(values.get(name, ())) > 1:
            raise _bad(name, "is given more than once", "GW-0702")
    output = values.get("_outputFormat", [NDJSON])[0]
    if output not in _NDJSON_NAMES:
        raise _bad("_outputFormat", f"{output!r}: only {NDJSON} is written", "GW-0703")
    types = _types(level, values.get("_type", []), searchable)
    since = values.get("_since", [None])[0]
    if since is not None:
        since = _instant(since)
    project = values.get("project", [DEFAULT_PROJECT])[0]
    if not _PROJECT.fullmatch(project):
        raise _bad(
            "project",
            f"{project!r}: a project is named with lower-case letters, digits and hyphens",
            "GW-0704",
        )
    return ExportAsk(
        level=level,
        types=types,
        since=since,
        filters=_filters(values.get("_typeFilter", []), types),
        elements=_elements(values.get("_elements", []), types),
        project=project,
        group=group,
    )


def _types(level: str, named: list[str], searchable: Collection[str]) -> tuple[str, ...]:
    wanted = [t.strip() for value in named for t in value.split(",") if t.strip()]
    for res_type in wanted:
        support = RESOURCES.get(res_type)
        if support is None or not support.supports(TypeInteraction.SEARCH_TYPE):
            raise _bad("_type", f"{res_type!r} is not a type this server serves", "GW-0705")
        if res_type in NEVER:
            raise _bad("_type", f"{res_type} is never exported", "GW-0706")
    types = tuple(dict.fromkeys(wanted)) or exportable(level)
    refused = [t for t in types if t not in searchable]
    if wanted and refused:
        raise _bad(
            "_type",
            f"the access token's scopes do not allow reading {', '.join(refused)}",
            "GW-0707",
        )
    types = tuple(t for t in types if t in searchable)
    if not types:
        raise _bad("_type", "the access token's scopes allow reading no type", "GW-0707")
    return types


def _instant(text: str) -> str:
    """``_since`` as the gateway's own instants are written (UTC, fixed
    width), so the search compares like with like."""
    try:
        return fhirjson.instant(fhirjson.parse_instant(text))
    except InvalidRequest:
        raise _bad(
            "_since", f"{text!r} is not a FHIR instant (e.g. 2026-01-31T09:00:00Z)", "GW-0708"
        ) from None


def _filters(given: list[str], types: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for value in given:
        for text in _QUERY_START.split(value):
            res_type, mark, query = text.partition("?")
            if not mark or res_type not in types:
                raise _bad(
                    "_typeFilter",
                    f"{text!r} is not a search on a type this export includes "
                    "([type]?[parameters])",
                    "GW-0709",
                )
            pairs = parse_qsl(query, keep_blank_values=True)
            shaping = sorted({name for name, _ in pairs} & _NOT_FILTERS)
            if shaping:
                raise _bad(
                    "_typeFilter",
                    f"{text!r}: {', '.join(shaping)} shape a result page; a filter "
                    "takes search parameters only",
                    "GW-0709",
                )
            parse_search(res_type, pairs)  # raises, naming the parameter, if it is wrong
            found.setdefault(res_type, []).append(query)
    return {t: tuple(q) for t, q in found.items()}


def _elements(given: list[str], types: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for value in given:
        for text in (part.strip() for part in value.split(",")):
            match = _ELEMENT.fullmatch(text)
            if match is None or (match.group(1) and match.group(1) not in types):
                raise _bad(
                    "_elements",
                    f"{text!r} is not an element ([type].[element] or [element]) of a type "
                    "this export includes",
                    "GW-0710",
                )
            found.setdefault(match.group(1) or "", []).append(match.group(2))
    return {t: tuple(e) for t, e in found.items()}
