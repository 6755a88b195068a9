"""How a token's scopes apply to a search: every type it searches, chains
into or reverse-chains from needs ``s``; types it would include need ``r``
and are left out of the results without it (an include is optional, a
criterion is not)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.auth.scopes import Permission, Scopes
from gateway.errors import Forbidden
from gateway.search.query import Condition, SearchQuery


def _criteria_types(conditions: Iterable[Condition]) -> Iterator[str]:
    for condition in conditions:
        if condition.chain is not None:
            target, inner = condition.chain
            yield target
            yield from _criteria_types([inner])
        if condition.reverse is not None:
            source, _, inner = condition.reverse
            yield source
            yield from _criteria_types([inner])


def authorize_search(scopes: Scopes, query: SearchQuery) -> None:
    """Raise ``Forbidden`` unless the scopes allow searching every type the
    query searches or uses as a criterion."""
    searched = list(query.types or (query.res_type,))
    for res_type in dict.fromkeys([*searched, *_criteria_types(query.conditions)]):
        if not scopes.allows(res_type, Permission.SEARCH):
            raise Forbidden(
                f"the access token's scopes ({scopes}) do not allow searching {res_type}",
                code="GW-0611",
            )


def includable(scopes: Scopes) -> frozenset[str]:
    """The types a search may include for this token."""
    return scopes.types_allowing(Permission.READ)
