"""The facts the consent rules read, indexed with each version, so a search
can leave out in SQL what its requester could never be shown
(``gateway.access.scope``).

Beside a resource's search values (``gateway.search.index``) it carries, as
index rows under parameter codes no client may search by (``_access-*``):

- ``_access-person``: the Patient whose record it is; or, for a record
  naming no Patient by id, ``_access-whose``: ``identified`` (a person
  named by identifier alone), ``no-person`` or ``directory``
  (``whose_record``);
- ``_access-author``: the organisation that wrote it (``meta.source``);
- ``_access-owner``: the organisation whose own id it has (``<ODS>-...``:
  the first part of the id, where it reads as an ODS code);
- ``_access-label``: ``R`` when legally restricted, ``restricted`` when it
  carries a restricted-data label;
- ``_access-carer`` / ``_access-carer-org``: the organisations a Patient,
  EpisodeOfCare or Encounter says care for its person (the code: an ODS
  code, or the id of the Organization named; the system: the Patient cared
  for), and ``_access-care-until`` when that lapses;
- ``_access-ods``: an Organization's ODS code;
- on an active privacy Consent: ``_access-held`` when it cannot be
  interpreted whatever the Organizations it names (its person's records
  are withheld from all but their authors), and ``_access-denies`` (an ODS
  code, or ``*`` for everyone) with ``_access-deny-window`` when its whole
  provision refuses those organisations every record for direct care.

Each is read with the very functions a decision uses (``facts_of``,
``whose_record``, ``care_claims``, ``ods_of_organisation``), and written in
the unit of work of its version, so the index never disagrees with the data.
None depends on the moment or on another resource: what changes with time
(a lapsed Encounter) or elsewhere (an Organization's code) is compared when
the search runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

from consent.model import ID_SEPARATOR, PERSON
from consent.parse import Uninterpretable, is_privacy_consent, parse_consent
from gateway.access.claims import care_claims, named_organisation, ods_of_organisation
from gateway.access.facts import facts_of, whose_record
from gateway.search import index as search_index
from gateway.search.extract import extract
from gateway.search.parameters import parameter
from gateway.store import IndexEntry, Store
from gateway.store.values import DateRange, ReferenceValue, SortValue, TokenValue

WHOSE = "_access-whose"
PERSON_OF = "_access-person"
AUTHOR = "_access-author"
OWNER = "_access-owner"
# An ODS code as an id's first part names it (``ResourceFacts.authored_by``).
OWNER_CODE = re.compile(r"[A-Z0-9]{1,16}")
LABEL = "_access-label"
CARER = "_access-carer"
CARER_ORG = "_access-carer-org"
CARE_UNTIL = "_access-care-until"
ODS = "_access-ods"
HELD = "_access-held"
DENIES = "_access-denies"
DENY_WINDOW = "_access-deny-window"
EVERYONE = "*"
_OPEN_LOW = "0001-01-01T00:00:00.000000Z"
_OPEN_HIGH = "9999-12-31T23:59:59.999999Z"
# ``WHOSE`` of a record naming its person by an identifier alone: whose it
# is is resolved afresh for each decision, so a search cannot leave it out.
IDENTIFIED = "identified"
LEGALLY_RESTRICTED = "R"
RESTRICTED = "restricted"


def _token(param: str, code: str) -> IndexEntry:
    return IndexEntry(param, TokenValue(None, code))


def access_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """The ``_access-*`` rows of ``resource``."""
    whose = whose_record(resource)
    facts = facts_of(resource, content=False, whose=whose.whose)
    entries: list[IndexEntry] = []
    if whose.patient_id is not None:
        # A person's record, by far the most: its person says it all.
        entries.append(IndexEntry(PERSON_OF, ReferenceValue(None, "Patient", whose.patient_id)))
    else:
        kind = IDENTIFIED if whose.whose == PERSON else whose.whose
        entries.append(_token(WHOSE, kind))
    if facts.author_ods:
        entries.append(_token(AUTHOR, facts.author_ods))
    owner, separator, _ = facts.res_id.partition(ID_SEPARATOR)
    if separator and OWNER_CODE.fullmatch(owner):
        entries.append(_token(OWNER, owner))
    if facts.legally_restricted:
        entries.append(_token(LABEL, LEGALLY_RESTRICTED))
    if facts.restricted:
        entries.append(_token(LABEL, RESTRICTED))
    for claim in care_claims(resource):
        code, organisation = named_organisation(claim.organisation)
        for person in _cared_for(resource):
            # Keyed by the person too, so that whether one person is in an
            # organisation's care is one look-up (``gateway.access.scope``).
            if code is not None:
                entries.append(IndexEntry(CARER, TokenValue(person, code)))
            elif organisation is not None:
                entries.append(IndexEntry(CARER_ORG, TokenValue(person, organisation)))
        if claim.until is not None:
            # An unreadable end is kept as never lapsing: the pre-filter
            # keeps what a decision might show, the decision refuses it.
            until = claim.until if claim.until[:1].isdigit() else "9999-12-31T23:59:59.999999Z"
            entries.append(IndexEntry(CARE_UNTIL, DateRange(until, until)))
    if resource.get("resourceType") == "Organization":
        code = ods_of_organisation(resource)
        if code is not None:
            entries.append(_token(ODS, code))
    if resource.get("resourceType") == "Consent":
        entries += _consent_entries(resource)
    return entries


def _cared_for(resource: dict[str, Any]) -> list[str]:
    """The Patients a claim of care in ``resource`` is about, as a decision
    finds them (``load_person``): a Patient itself, or the Patients an
    EpisodeOfCare or Encounter names by ``patient``."""
    res_type = str(resource.get("resourceType"))
    if res_type == "Patient":
        return [str(resource["id"])] if resource.get("id") else []
    definition = parameter(res_type, "patient")
    if definition is None:
        return []
    return sorted(
        {
            value.target_id
            for value in extract(resource, definition)
            if isinstance(value, ReferenceValue)
            and value.target_type == "Patient"
            and value.target_id
        }
    )


def _consent_entries(consent: dict[str, Any]) -> list[IndexEntry]:
    """What an active privacy Consent says of its person's sharing, as far as
    it can be told from the Consent alone: an actor it names by reference is
    read as an organisation no requester is (resolved only when decided), so
    what is said here is never more than a decision finds."""
    if consent.get("status") != "active" or not is_privacy_consent(consent):
        return []
    try:
        policy = parse_consent(consent, lambda reference: "")
    except Uninterpretable:
        return [_token(HELD, "held")]
    root = policy.provision
    wholly = (
        root.type == "deny"
        and not root.provisions
        and not (root.classes or root.labels or root.codes or root.data)
        and root.data_period == (None, None)
        and (not root.purposes or "TREAT" in root.purposes)
    )
    if not wholly:
        return []
    refused = sorted(code for code in root.actors if code) if root.actors else [EVERYONE]
    if not refused:
        return []
    low, high = root.period
    window = DateRange(low or _OPEN_LOW, high or _OPEN_HIGH)
    return [*(_token(DENIES, code) for code in refused), IndexEntry(DENY_WINDOW, window)]


def entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """Every index row of ``resource``: its search values and its access facts."""
    return _keyed_by_person([*search_index.index_entries(resource), *access_entries(resource)])


def stamped(index: Sequence[IndexEntry], instant: str) -> list[IndexEntry]:
    """A version's rows ``index`` (``entries``) with those of its stamp, as
    the store gives it: its last-updated value and sort key (``instant``),
    that key also keyed by the person whose record it is."""
    return _keyed_by_person([*index, *search_index.last_updated_entries(instant)])


def _keyed_by_person(index: Sequence[IndexEntry]) -> list[IndexEntry]:
    """``index`` with each of its sort keys keyed by the person whose record
    it is (its ``_access-person``), so that the records of the few people a
    requester cares for are read in order person by person
    (``gateway.search.paging``) rather than all read and then sorted."""
    person = next(
        (
            e.value.target_id
            for e in index
            if e.param == PERSON_OF and isinstance(e.value, ReferenceValue)
        ),
        None,
    )
    if person is None:
        return list(index)
    return [
        IndexEntry(e.param, replace(e.value, person=person))
        if isinstance(e.value, SortValue)
        else e
        for e in index
    ]


@cache
def version() -> str:
    """A fingerprint of the rules both kinds of row are built with: a store
    built with others is reindexed before it serves."""
    digest = hashlib.sha256(search_index.index_version().encode())
    # The modules holding the rules, and only those: a change to how a
    # decision reads a person (``people.py``) rebuilds nothing.
    for package, module in (
        ("gateway.access", "index.py"),
        ("gateway.access", "facts.py"),
        ("gateway.access", "claims.py"),
        ("consent", "parse.py"),
    ):
        digest.update(resources.files(package).joinpath(module).read_bytes())
    return digest.hexdigest()[:16]


def reindex(store: Store) -> int:
    """Rebuild every live resource's index rows; how many."""
    return search_index.reindex(store, entries=entries, version=version())


def ensure_current(store: Store) -> int | None:
    """Reindex if the store's index was built with other rules; how many
    resources, or ``None`` if nothing was needed."""
    return search_index.ensure_current(store, entries=entries, version=version())
