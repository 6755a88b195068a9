"""The values a search parameter extracts from a resource, by parameter type.

https://hl7.org/fhir/R4/search.html#ptypes. Extraction
(``gateway.search.extract``) turns a resource into these; the store writes
them into one index table per type; queries compare against the same shapes.
They are the vocabulary of the store's index, so they live in the store's
layer: the store writes them without knowing how search finds them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal


def normalise_text(value: str) -> str:
    """String search is case- and accent-insensitive
    (https://hl7.org/fhir/R4/search.html#string): fold case, drop combining
    marks, squeeze whitespace."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.split())


@dataclass(frozen=True, slots=True)
class TokenValue:
    """Coding, Identifier, ContactPoint, code, boolean, id... ``text`` carries
    what ``:text`` searches (CodeableConcept.text, Coding.display,
    Identifier.type.text)."""

    system: str | None
    code: str | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string (HumanName and Address parts are extracted one string each)."""

    value: str


@dataclass(frozen=True, slots=True)
class DateRange:
    """A date, dateTime, instant, Period or Timing event as the half-open
    range of instants it covers, ``[low, high)``, in the fixed-width UTC form
    of ``gateway.fhirjson.instant``. A dateTime of a day covers the whole day;
    an open Period end is ``9999-12-31T23:59:59.999999Z`` (treated as open)."""

    low: str
    high: str


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A Reference (or canonical). ``target_type``/``target_id`` are set for
    ``Type/id`` and for absolute URLs that end in ``Type/id``; ``url`` keeps
    what was written; ``identifier`` is ``Reference.identifier`` for
    ``:identifier``."""

    url: str | None
    target_type: str | None = None
    target_id: str | None = None
    identifier: TokenValue | None = None


@dataclass(frozen=True, slots=True)
class QuantityValue:
    value: Decimal
    system: str | None = None
    code: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class NumberValue:
    value: Decimal


@dataclass(frozen=True, slots=True)
class UriValue:
    value: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """One combination of a composite parameter's two components, taken from
    the same element (https://hl7.org/fhir/R4/search.html#composite): the
    first a token or reference, the second a token, quantity, date or string."""

    first: TokenValue | ReferenceValue
    second: TokenValue | QuantityValue | DateRange | StringValue


@dataclass(frozen=True, slots=True)
class SortValue:
    """A resource's one sort key for a parameter, both ways: the least of
    its values (what an ascending ``_sort`` orders by) and the greatest (a
    descending one). Kept beside the values so that a sort reads an index
    in order instead of working out every candidate's key. ``person``: the
    Patient whose record the resource is, where it is one, so that the
    records of a requester's people are read in order person by person
    (``gateway.search.paging``)."""

    first: str | None
    last: str | None
    person: str | None = None


SearchValue = (
    TokenValue
    | StringValue
    | DateRange
    | ReferenceValue
    | QuantityValue
    | NumberValue
    | UriValue
    | CompositeValue
    | SortValue
)
