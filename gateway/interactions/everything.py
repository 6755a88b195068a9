"""``Patient/[id]/$everything``: a person's record, as one paged searchset
(https://hl7.org/fhir/R4/patient-operation-everything.html).

The Patient and every resource in its compartment, of the types the
requester may search, through the same search and consent path as any other
search: what consent hides is not there, and counts only what is.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from gateway.errors import InvalidRequest, Issue
from gateway.search.compartments import PATIENT_COMPARTMENT, compartment_members
from gateway.search.query import SearchQuery, parse_system_search

# The operation's own parameters, and what they are in search terms. Its
# ``start`` and ``end`` (a care date range) are not supported.
_OPERATION_PARAMETERS = frozenset({"_count", "_type", "_since", "_cursor", "_total", "_format"})


def everything_query(
    patient_id: str,
    params: Sequence[tuple[str, str]],
    *,
    base_url: str,
    within: Collection[str],
) -> SearchQuery:
    """The search behind ``$everything`` for one patient, over the
    compartment's types that are also in ``within`` (the searchable ones)."""
    for name, _ in params:
        if name not in _OPERATION_PARAMETERS:
            raise InvalidRequest(
                f"$everything does not take {name!r} (it takes _count, _type and _since)",
                code="GW-0330",
                issues=[Issue("not-supported", f"$everything parameter {name!r}", (name,))],
            )
    types = [t for t in PATIENT_COMPARTMENT if t in within]
    translated = [
        ("_lastUpdated", f"ge{value}") if name == "_since" else (name, value)
        for name, value in params
        if name != "_format"
    ]
    if not any(name == "_type" for name, _ in translated):
        translated.append(("_type", ",".join(types)))
    query = parse_system_search(translated, base_url=base_url, within=types)
    outside = [t for t in query.types if t not in types]
    if outside:
        raise InvalidRequest(
            f"_type: {', '.join(outside)} is not in the Patient compartment or may not be "
            "searched with this token",
            code="GW-0331",
            issues=[Issue("value", "_type outside the compartment", ("_type",))],
        )
    query.compartment = ("Patient", patient_id, compartment_members("Patient", query.types))
    # The link keeps what the caller asked, not the expansion.
    query.canonical = [(n, v) for n, v in params if n not in ("_cursor", "_format")]
    return query
