"""A person named by identifier, resolved to their Patient (PRODUCT.md
section 4, "Whose record it is").

A record may name its person by a logical reference only, as
``"subject": {"identifier": {"system": NHS number, "value": ...}}``. When it
is written, the one live Patient carrying that identifier is named by id as
well (``"reference": "Patient/<id>"``, the identifier kept), so the record
is that person's on every path: consent, compartments, ``$everything``.
Where no Patient carries it (a person not yet known) or several do, the
record is stored as it came, and the access layer resolves the identifier
again whenever it decides on the record: its author's alone until the
person is known, then that person's.

Every live Patient counts, not only those the writer may see: whose record
it is does not depend on who wrote it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from consent.model import Coding
from gateway.access.facts import person_element, person_identifier
from gateway.search.matching import matching_ids
from gateway.store import Querier

# What the search syntax gives a meaning to inside a token value: an
# identifier holding any of them is not looked for (its record stays its
# author's), rather than looked for as something else.
_SPECIAL = frozenset("\\|,$")


def patient_by_identifier(reader: Querier, identifier: Coding) -> str | None:
    """The id of the one live Patient carrying ``identifier`` (system,
    value); ``None`` when none does, when several do, or when the identifier
    has no system (a value alone could be any system's)."""
    system, value = identifier
    if not system or _SPECIAL.intersection(system + value):
        return None
    found = matching_ids(
        reader, "Patient", urlencode({"identifier": f"{system}|{value}"}), visible=None
    )
    return found[0] if len(found) == 1 else None


def with_person_resolved(reader: Querier, resource: dict[str, Any]) -> dict[str, Any] | None:
    """``resource`` naming by id as well the Patient it names by identifier
    alone, or ``None`` when there is nothing to add: it names its person by
    id already (no search is made), names none, or no single live Patient
    carries the identifier."""
    identifier = person_identifier(resource)
    if identifier is None:
        return None
    patient_id = patient_by_identifier(reader, identifier)
    if patient_id is None:
        return None
    element = person_element(resource["resourceType"])
    assert element is not None  # it names its person by that element
    return {**resource, element: {"reference": f"Patient/{patient_id}", **resource[element]}}
