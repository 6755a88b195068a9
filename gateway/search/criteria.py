"""Parsing search criteria, as conditional create (``If-None-Exist``) and
conditional update (``PUT [type]?...``) carry them.

https://hl7.org/fhir/R4/http.html#ccreate. Parameters not understood are an
error naming the parameter, never silently dropped: a conditional write that
ignored part of its condition could match, and so overwrite, the wrong
resource.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from gateway.errors import InvalidRequest, Issue
from gateway.store import Criteria, TokenMatch

CONDITIONAL_PARAMETERS = ("_id", "identifier")


def _token(param: str, value: str) -> TokenMatch:
    if "|" in value:
        system, _, code = value.partition("|")
        if not code:
            raise InvalidRequest(
                f"search parameter {param!r}: a code is needed after '|'",
                code="GW-0302",
                issues=[Issue("value", f"'{param}={value}': missing code", (param,))],
            )
        return TokenMatch(param=param, code=code, system=system)
    return TokenMatch(param=param, code=value, system=None)


def parse_criteria(res_type: str, query: str) -> Criteria:
    """Criteria from a query string such as ``identifier=sys|123&_id=abc``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise InvalidRequest(
            "conditional operations need at least one search parameter",
            code="GW-0300",
        )
    groups: list[tuple[TokenMatch, ...]] = []
    ids: set[str] | None = None
    for name, raw in pairs:
        if name not in CONDITIONAL_PARAMETERS:
            raise InvalidRequest(
                f"search parameter {name!r} is not supported on {res_type} for conditional "
                f"operations (supported: {', '.join(CONDITIONAL_PARAMETERS)})",
                code="GW-0301",
                issues=[Issue("not-supported", f"unknown search parameter {name!r}", (name,))],
            )
        values = [v for v in raw.split(",") if v]
        if not values:
            raise InvalidRequest(
                f"search parameter {name!r} has no value",
                code="GW-0302",
                issues=[Issue("value", f"search parameter {name!r} has no value", (name,))],
            )
        if name == "_id":
            ids = set(values) if ids is None else ids & set(values)
        else:
            groups.append(tuple(_token(name, v) for v in values))
    return Criteria(token_groups=tuple(groups), ids=frozenset(ids) if ids is not None else None)
