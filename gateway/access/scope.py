"""What of the store a requester could ever be shown, as SQL: the search
pre-filter.

A search must cost about what its page and the requester's own population
cost, not what the store holds. So before the consent engine decides each
row, the search statement leaves out, from indexed facts alone
(``gateway.access.index``), every resource the engine would refuse whoever
the person and whatever their Consents say. The engine stays the single
authority: each row the pre-filter keeps is still decided by it
(``AccessControl``); the pre-filter only ever keeps more.

It follows ``consent.engine.decide`` rule by rule, keeping a row when any
rule could permit it:

- ``author``: the requester wrote it, or assigned its id (``<ODS>-...``);
- ``legally-restricted``: an R-labelled row is its author's alone;
- ``directory``: no one's record, not restricted: shared with everyone;
- ``audit``: an auditor under HCOMPL sees the kinds of ``AUDITOR_TYPES``;
- under ETREAT (ambulance, hospital), and for secondary use (analytics):
  any person's record, named by id or by identifier, that carries no
  restricted label (who opted out is left to the engine);
- under TREAT: the records of the people the requester's organisation has
  a care relationship with now (the requester's population: a registered
  GP practice, an active episode, an Encounter in progress or recent, by
  ODS code or through an Organization carrying it), and records naming
  their person by identifier alone (whose they are is resolved afresh for
  each decision); less the people whose records are held (a Consent that
  cannot be interpreted) or whose Consent wholly refuses the organisation
  (or everyone) for direct care now. What else Consents and restricted
  labels refuse is left to the engine.

A search reads the records of those people (``Scope.people``) in one of
three ways, by what costs least: for a requester caring for few, by person
(a sorted page from each person's sort keys, ``search_sort.person``; a count
from each person's records, ``Scope.records``); for one caring for many, by
testing each candidate as it is read in the sort index's order
(``probing``); otherwise as one list, read whole.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime

from consent.engine import AUDITOR_TYPES, EMERGENCY_KINDS, SECONDARY_KIND
from consent.model import DIRECTORY, ID_SEPARATOR, NO_PERSON, SECONDARY_USE, Requester
from gateway import fhirjson
from gateway.access import index
from gateway.search.sql import SqlBuilder, like_escape
from gateway.store import Querier

# The kinds of resource that state care relationships (``care_claims``).
_CLAIMING = ("Patient", "EpisodeOfCare", "Encounter")
# From this many people in its care (at least), a requester's searches test
# candidates one by one as they are read, rather than first reading all it
# may see. Testing costs what the page costs times how many people are on
# file per person the requester sees; reading costs what its population
# holds: they cross near ``_CROSSING`` times the square root of the people
# on file (measured on a store of 20,000 people and one of 2,000).
BROAD_FROM = 100
_CROSSING = 2.5
# How long a count of the people on file, and an organisation's breadth,
# inform that choice, in seconds: they pick a plan, never what is shown.
_PEOPLE_COUNTED_FOR = 60.0
# The people on file, by store: (when counted, how many).
_people_on_file: weakref.WeakKeyDictionary[Querier, tuple[float, int]] = weakref.WeakKeyDictionary()
# Each organisation's breadth, by store: (when judged, broad).
_breadth: weakref.WeakKeyDictionary[Querier, dict[str, tuple[float, bool]]] = (
    weakref.WeakKeyDictionary()
)


def forget_breadth(reader: Querier) -> None:
    """Judge breadth afresh on this store: after its data is replaced
    wholesale (a restore, or a test's next world), rather than a minute on."""
    _people_on_file.pop(reader, None)
    _breadth.pop(reader, None)


def broad_from(reader: Querier) -> int:
    """How many people in its care make a requester broad, on this store."""
    now = time.monotonic()
    counted = _people_on_file.get(reader)
    if counted is None or now - counted[0] > _PEOPLE_COUNTED_FOR:
        b = SqlBuilder()
        sql = (
            f"SELECT COUNT(*) FROM resource_current WHERE res_type = {b.bind('Patient')} "
            f"AND deleted = {b.bind(False)}"
        )
        (people,) = reader.select(sql, b.params)[0]
        counted = (now, int(str(people)))
        _people_on_file[reader] = counted
    return max(BROAD_FROM, math.ceil(_CROSSING * math.sqrt(counted[1])))


# Ends each subquery of the pre-filter's tests of one candidate (``probing``).
# Without it PostgreSQL pulls those subqueries up into the statement's joins
# and plans every join order they allow, on every request: for a search
# naming one person's records, four fifths of its time went to planning
# (``docs/performance.md``). With ``OFFSET`` a subquery stays a test of the
# candidate at hand, planned on its own, as the probe means it. ``LIMIT 1``
# changes nothing an EXISTS reads (it would change what an IN reads: never
# there), and lets SQLite, which takes an OFFSET only after a LIMIT, read the
# same text. Custom plans still: a generic plan, blind to which codes are
# common in the index tables, drives a probe from the wrong index.
_PROBE_FENCE = " LIMIT 1 OFFSET 0"


def _own_ids(b: SqlBuilder, id_expr: str, org: str) -> str:
    """SQL true for an id the organisation assigned itself (``<ODS>-...``),
    read from the id itself: for a code ``_access-owner`` does not index."""
    return f"{id_expr} LIKE {b.bind(like_escape(org + ID_SEPARATOR) + '%')} ESCAPE '\\'"


def _not_legally_restricted(b: SqlBuilder, of_type: str, id_expr: str, fence: str = "") -> str:
    """SQL true for a resource (``res_type {of_type}``, ``id_expr``) that
    carries no R label. ``of_type`` binds its values first, as its text comes
    first; ``fence``: ``_PROBE_FENCE`` when probing."""
    legal = b.alias("l")
    return (
        f"NOT EXISTS (SELECT 1 FROM search_token {legal} WHERE {legal}.res_type {of_type} "
        f"AND {legal}.res_id = {id_expr} AND {legal}.param = {b.bind(index.LABEL)} "
        f"AND {legal}.code = {b.bind(index.LEGALLY_RESTRICTED)}{fence})"
    )


class Scope:
    """The pre-filter of one requester at one moment: called with a
    statement's builder, the types searched and the columns naming each
    candidate, it gives the SQL condition (``gateway.search.paging``)."""

    def __init__(self, requester: Requester, now: datetime) -> None:
        self.requester = requester
        self._now = fhirjson.instant(now)

    def __call__(
        self,
        builder: SqlBuilder,
        types: Sequence[str],
        type_expr: str,
        id_expr: str,
        *,
        probing: bool = False,
        people: bool = True,
    ) -> str:
        """SQL true for every resource ``(type_expr, id_expr)``, one of
        ``types``, that some rule could show the requester; ``probing``:
        as tests of each candidate in turn (``gateway.search.paging``).
        Not ``people``: but the records of the requester's people
        (``people``), which the caller reads by person."""
        if probing:
            return self._probe(builder, types, type_expr, id_expr)
        b = builder
        several = len(types) > 1
        key = f"({type_expr}, {id_expr})" if several else id_expr
        rows = _Rows(b, types, several)
        # One IN of a UNION: the database reads the few rows it names and
        # fetches the candidates by key, rather than probing every
        # candidate with each rule. Placeholders are bound in text order.
        org = self.requester.org_ods
        statements: list[str] = []
        slow_own_ids = ""
        if org:
            statements.append(rows.token(index.AUTHOR, (org,)))
            if index.OWNER_CODE.fullmatch(org):
                statements.append(rows.token(index.OWNER, (org,)))
            else:  # no code of that form is indexed: read the ids themselves
                slow_own_ids = f"{_own_ids(b, id_expr, org)} OR "
        z = b.alias("z")
        beyond_author = " UNION ".join(self._beyond_author(rows, people))
        columns = f"{z}.res_type, {z}.res_id" if several else f"{z}.res_id"
        same_type = f"= {z}.res_type" if several else rows.kinds()
        unlabelled = _not_legally_restricted(b, same_type, f"{z}.res_id")
        statements.append(f"SELECT {columns} FROM ({beyond_author}) {z} WHERE {unlabelled}")
        return f"({slow_own_ids}{key} IN ({' UNION '.join(statements)}))"

    def broad(self, reader: Querier) -> bool:
        """Whether the requester may see much of the store: every person's
        records (ETREAT, an auditor's kinds), or the records of at least
        ``broad_from`` people in its care now."""
        requester = self.requester
        if _everyones(requester):
            return True
        if requester.kind == "auditor" and requester.purpose == "HCOMPL":
            return True
        if requester.purpose != "TREAT" or requester.kind == "auditor":
            return False
        # Judged from a sample of its claims of care, read as they are
        # found: how many people they name. Reading every person in its care
        # to count them would cost what the pre-filter saves. A misjudgement
        # costs time, never a wrong answer (both plans keep the same rows),
        # and the sample errs towards reading what the requester sees. At
        # most once a minute per organisation and store.
        now = time.monotonic()
        judged = _breadth.setdefault(reader, {})
        known = judged.get(requester.org_ods)
        if known is not None and now - known[0] <= _PEOPLE_COUNTED_FOR:
            return known[1]
        wanted = broad_from(reader)
        b = SqlBuilder()
        claimants = f"{self._claims(b, distinct=False)} LIMIT {2 * wanted}"
        sql = f"SELECT COUNT(DISTINCT n.person) FROM ({claimants}) n"
        (found,) = reader.select(sql, b.params)[0]
        is_broad = int(str(found)) >= wanted
        judged[requester.org_ods] = (now, is_broad)
        return is_broad

    def _probe(self, b: SqlBuilder, types: Sequence[str], type_expr: str, id_expr: str) -> str:
        """The pre-filter as tests of one candidate: what a page read in an
        index's order needs, stopping at the page, where one IN would first
        read every row the rules name (a whole population)."""
        rows = _Rows(b, types, len(types) > 1, owner=(type_expr, id_expr))
        org = self.requester.org_ods
        terms: list[str] = []
        if org:
            terms.append(f"EXISTS ({rows.token(index.AUTHOR, (org,))}{_PROBE_FENCE})")
            if index.OWNER_CODE.fullmatch(org):
                terms.append(f"EXISTS ({rows.token(index.OWNER, (org,))}{_PROBE_FENCE})")
            else:
                terms.append(_own_ids(b, id_expr, org))
        not_legally_restricted = _not_legally_restricted(b, f"= {type_expr}", id_expr, _PROBE_FENCE)
        beyond = " OR ".join(f"EXISTS ({rule}{_PROBE_FENCE})" for rule in self._beyond_author(rows))
        terms.append(f"({not_legally_restricted} AND ({beyond}))")
        return "(" + " OR ".join(terms) + ")"

    def people(self, builder: SqlBuilder, types: Sequence[str]) -> str | None:
        """A statement of the ids of the people whose records of ``types``
        the requester's care relationships open to it (its population, less
        those withheld: the records themselves still closed if legally
        restricted); ``None`` where no such rule shows it records. What a
        search reads by person (``gateway.search.paging``), leaving them
        out of the pre-filter (``people=False``)."""
        if not self._cares:
            return None
        return self._people(builder, refusing="Consent" not in types)

    def _people(self, b: SqlBuilder, refusing: bool) -> str:
        """``people``: those in the requester's care (``_claims``) but not
        withheld from it (``_withheld``)."""
        people = self._claims(b)
        withheld = self._withheld(b, refusing)
        return f"SELECT n.person FROM ({people}) n WHERE n.person NOT IN ({withheld})"

    def records(self, builder: SqlBuilder, types: Sequence[str]) -> str | None:
        """A statement of the records ``(res_type, res_id)`` of ``types``
        of the people of ``people`` that carry no R label: those the rule
        of its care relationships opens. ``None`` as ``people``."""
        if not self._cares:
            return None
        refusing = "Consent" not in types
        theirs = _Rows(builder, types, True).of_people(lambda b: self._people(b, refusing))
        r = builder.alias("r")
        unlabelled = _not_legally_restricted(builder, f"= {r}.res_type", f"{r}.res_id")
        return f"SELECT {r}.res_type, {r}.res_id FROM ({theirs}) {r} WHERE {unlabelled}"

    @property
    def _cares(self) -> bool:
        """Whether the requester is shown records by whom it cares for."""
        requester = self.requester
        return requester.purpose == "TREAT" and requester.kind != "auditor"

    def _beyond_author(self, rows: _Rows, people: bool = True) -> list[str]:
        """Statements of the rows a rule besides ``author`` could show, if
        not legally restricted (which the caller checks); not ``people``:
        but the records of the requester's people. Each is written only if
        used: writing one binds its values."""
        requester = self.requester
        if _everyones(requester):
            # Not an auditor's kind: the audit rules never reach these.
            return [rows.unrestricted_but(NO_PERSON)]
        found = [rows.unrestricted((DIRECTORY,))]
        if requester.kind == "auditor" or requester.purpose == "HCOMPL":
            audited = [t for t in rows.types if t in AUDITOR_TYPES]
            if requester.kind == "auditor" and requester.purpose == "HCOMPL" and audited:
                found.append(rows.every(audited))
        elif requester.purpose == "TREAT":
            found.append(rows.token(index.WHOSE, (index.IDENTIFIED,)))
            # A person's privacy Consents are shown to those caring for them
            # whatever they refuse (``consent-record``): where Consents are
            # searched, only the people whose records are held are left out.
            refusing = "Consent" not in rows.types
            if not people:
                pass  # the caller reads them by person
            elif rows.probing:
                found.append(rows.of_person(lambda b, person: self._admits(b, person, refusing)))
            else:
                found.append(rows.of_people(lambda b: self._people(b, refusing)))
        return found

    def _admits(self, b: SqlBuilder, person: str, refusing: bool) -> str:
        """SQL true when the Patient whose id is the column ``person`` is in
        the requester's care now and not withheld: ``_claims`` and
        ``_withheld`` as a test of one person, a few index probes, where
        they read every person in its care (a whole population, to test a
        page of twenty)."""
        cared_for = self._claims(b, distinct=False, person=person)
        withheld = self._withholds(b, person, refusing)
        return f"EXISTS ({cared_for}{_PROBE_FENCE}) AND NOT {withheld}"

    def _withholds(self, b: SqlBuilder, person: str, refusing: bool) -> str:
        """SQL true when the Patient whose id is the column ``person`` is
        withheld from the requester (``_withheld`` for one person), written
        for probing."""
        d, h, x, w = (b.alias(a) for a in "dhxw")
        fence = _PROBE_FENCE
        # Placeholders are bound in the order they appear in the text.
        head = (
            f"EXISTS (SELECT 1 FROM search_reference {d} WHERE {d}.res_type = "
            f"{b.bind('Consent')} AND {d}.param = {b.bind('patient')} AND {d}.target_type = "
            f"{b.bind('Patient')} AND {d}.target_id = {person} AND ("
        )
        held = (
            f"EXISTS (SELECT 1 FROM search_token {h} WHERE {h}.res_type = {b.bind('Consent')} "
            f"AND {h}.res_id = {d}.res_id AND {h}.param = {b.bind(index.HELD)}{fence})"
        )
        refused = ""
        if refusing:
            refused = (
                f" OR EXISTS (SELECT 1 FROM search_token {x} WHERE {x}.res_type = "
                f"{b.bind('Consent')} AND {x}.res_id = {d}.res_id AND {x}.param = "
                f"{b.bind(index.DENIES)} AND {x}.code IN "
                f"({b.bind(self.requester.org_ods)}, {b.bind(index.EVERYONE)}) "
                f"AND EXISTS (SELECT 1 FROM search_date {w} WHERE {w}.res_type = {x}.res_type "
                f"AND {w}.res_id = {x}.res_id AND {w}.param = {b.bind(index.DENY_WINDOW)} "
                f"AND {w}.low <= {b.bind(self._now)} AND {w}.high > {b.bind(self._now)}{fence})"
                f"{fence})"
            )
        return f"{head}{held}{refused}){fence})"

    def _withheld(self, b: SqlBuilder, refusing: bool) -> str:
        """The ids of people among whose records the requester could be
        shown none but its own: an active Consent of theirs cannot be
        interpreted, or (``refusing``) wholly refuses the requester's
        organisation, or everyone, for direct care now
        (``gateway.access.index``)."""
        h, x, w, d = (b.alias(a) for a in "hxwd")
        # Placeholders are bound in the order they appear in the text.
        head = (
            f"SELECT {d}.target_id FROM search_reference {d} WHERE {d}.res_type = "
            f"{b.bind('Consent')} AND {d}.param = {b.bind('patient')} AND {d}.target_type = "
            f"{b.bind('Patient')} AND {d}.target_id IS NOT NULL AND {d}.res_id IN "
        )
        consents = (
            f"SELECT {h}.res_id FROM search_token {h} WHERE {h}.res_type = {b.bind('Consent')} "
            f"AND {h}.param = {b.bind(index.HELD)}"
        )
        if refusing:
            consents += (
                f" UNION SELECT {x}.res_id FROM search_token {x} WHERE {x}.res_type = "
                f"{b.bind('Consent')} AND {x}.param = {b.bind(index.DENIES)} AND {x}.code IN "
                f"({b.bind(self.requester.org_ods)}, {b.bind(index.EVERYONE)}) "
                f"AND EXISTS (SELECT 1 FROM search_date {w} "
                f"WHERE {w}.res_type = {x}.res_type AND {w}.res_id = {x}.res_id "
                f"AND {w}.param = {b.bind(index.DENY_WINDOW)} "
                f"AND {w}.low <= {b.bind(self._now)} AND {w}.high > {b.bind(self._now)})"
            )
        return f"{head}({consents})"

    def _claims(self, b: SqlBuilder, *, distinct: bool = True, person: str | None = None) -> str:
        """The people the requester's organisation cares for now (its
        population, ``Person.relationships``): the Patient (column
        ``person``) of each claim of care by it now, a Patient,
        EpisodeOfCare or Encounter naming it by its ODS code or by an
        Organization carrying that code, not lapsed, about the person a
        decision reads it for (the index keys each claim by them). Not
        ``distinct``: a person comes once per claim, as found. With
        ``person`` (a column): that person's claims only, a test of one
        person, written for probing."""
        org = self.requester.org_ods
        c, o, g = (b.alias(x) for x in "cog")
        fence = _PROBE_FENCE if person is not None else ""

        def claiming(alias: str, param: str) -> str:
            kinds = ", ".join(b.bind(t) for t in _CLAIMING)
            return (
                f"SELECT {alias}.system AS person FROM search_token {alias} "
                f"WHERE {alias}.res_type IN ({kinds}) AND {alias}.param = {b.bind(param)}"
            )

        def about(alias: str) -> str:
            # Placeholders are bound in the order they appear in the text.
            whom = f" AND {alias}.system = {person}" if person is not None else ""
            u = b.alias("u")
            return (
                f"{whom} AND NOT EXISTS (SELECT 1 FROM search_date {u} WHERE {u}.res_type = "
                f"{alias}.res_type AND {u}.res_id = {alias}.res_id AND {u}.param = "
                f"{b.bind(index.CARE_UNTIL)} AND {u}.high < {b.bind(self._now)}{fence})"
            )

        by_code = f"{claiming(c, index.CARER)} AND {c}.code = {b.bind(org)}{about(c)}"
        by_organisation = (
            f"{claiming(o, index.CARER_ORG)} AND {o}.code IN ("
            f"SELECT {g}.res_id FROM search_token {g} WHERE {g}.res_type = "
            f"{b.bind('Organization')} AND {g}.param = {b.bind(index.ODS)} "
            f"AND {g}.code = {b.bind(org)}){about(o)}"
        )
        union = "UNION" if distinct else "UNION ALL"
        return f"{by_code} {union} {by_organisation}"


class _Rows:
    """Statements selecting candidates (their id, or type and id when
    several types are searched) from the access rows."""

    def __init__(
        self,
        builder: SqlBuilder,
        types: Sequence[str],
        several: bool,
        owner: tuple[str, str] | None = None,
    ) -> None:
        self.builder = builder
        self.types = types
        self._several = several
        # Probing one candidate (its type and id columns): each statement
        # selects 1 from that candidate's rows only.
        self._owner = owner
        self._fence = _PROBE_FENCE if owner is not None else ""

    def kinds(self) -> str:
        """``IN (...)`` of the types searched."""
        return f"IN ({', '.join(self.builder.bind(t) for t in self.types)})"

    def _head(self, table: str, alias: str, types: Sequence[str]) -> str:
        b = self.builder
        kinds = ", ".join(b.bind(t) for t in types)
        if self._owner is not None:
            type_expr, id_expr = self._owner
            return (
                f"SELECT 1 FROM {table} {alias} WHERE {alias}.res_type IN ({kinds}) "
                f"AND {alias}.res_type = {type_expr} AND {alias}.res_id = {id_expr}"
            )
        columns = f"{alias}.res_type, {alias}.res_id" if self._several else f"{alias}.res_id"
        return f"SELECT {columns} FROM {table} {alias} WHERE {alias}.res_type IN ({kinds})"

    def token(self, param: str, codes: Sequence[str]) -> str:
        b = self.builder
        t = b.alias("a")
        head = f"{self._head('search_token', t, self.types)} AND {t}.param = {b.bind(param)}"
        return f"{head} AND {t}.code IN ({', '.join(b.bind(code) for code in codes)})"

    def unrestricted(self, kinds: Sequence[str]) -> str:
        """Rows whose record is of one of ``kinds`` (``_access-whose``) and
        that carry no restricted-data label."""
        b = self.builder
        t = b.alias("w")
        r = b.alias("r")
        return (
            f"{self._head('search_token', t, self.types)} AND {t}.param = "
            f"{b.bind(index.WHOSE)} AND {t}.code IN ({', '.join(b.bind(k) for k in kinds)}) "
            f"AND NOT EXISTS (SELECT 1 FROM search_token {r} WHERE {r}.res_type = {t}.res_type "
            f"AND {r}.res_id = {t}.res_id AND {r}.param = {b.bind(index.LABEL)} "
            f"AND {r}.code = {b.bind(index.RESTRICTED)}{self._fence})"
        )

    def unrestricted_but(self, kind: str) -> str:
        """Rows carrying no restricted-data label whose record is not of
        ``kind`` (``_access-whose``)."""
        b = self.builder
        e, w, r = b.alias("e"), b.alias("w"), b.alias("r")
        return (
            f"{self._head('resource_current', e, self.types)} AND NOT EXISTS (SELECT 1 FROM "
            f"search_token {w} WHERE {w}.res_type = {e}.res_type AND {w}.res_id = {e}.res_id "
            f"AND {w}.param = {b.bind(index.WHOSE)} AND {w}.code = {b.bind(kind)}{self._fence}) "
            f"AND NOT EXISTS (SELECT 1 FROM search_token {r} WHERE {r}.res_type = {e}.res_type "
            f"AND {r}.res_id = {e}.res_id AND {r}.param = {b.bind(index.LABEL)} "
            f"AND {r}.code = {b.bind(index.RESTRICTED)}{self._fence})"
        )

    def every(self, types: Sequence[str]) -> str:
        return self._head("resource_current", self.builder.alias("e"), types)

    @property
    def probing(self) -> bool:
        """Whether each statement tests one candidate (``owner``)."""
        return self._owner is not None

    def of_person(self, admits: Callable[[SqlBuilder, str], str]) -> str:
        """The candidate's row naming its person, where ``admits`` (SQL on
        the column of that person's id, binding its values as it writes)
        holds: a probe's form of ``of_people``."""
        b = self.builder
        t = b.alias("p")
        head = self._head("search_reference", t, self.types)
        return (
            f"{head} AND {t}.param = {b.bind(index.PERSON_OF)} "
            f"AND {t}.target_type = {b.bind('Patient')} AND {admits(b, f'{t}.target_id')}"
        )

    def of_people(self, people: Callable[[SqlBuilder], str]) -> str:
        """The records of the people ``people`` selects (it writes a
        statement of Patient ids, binding its values as it goes: in the
        order of the text)."""
        b = self.builder
        t = b.alias("p")
        head = self._head("search_reference", t, self.types)
        return (
            f"{head} AND {t}.param = {b.bind(index.PERSON_OF)} "
            f"AND {t}.target_type = {b.bind('Patient')} AND {t}.target_id IN ({people(b)})"
        )


def _everyones(requester: Requester) -> bool:
    """Whether the requester may be shown any person's unrestricted records
    without a care relationship: emergency access, and secondary use."""
    if requester.purpose == "ETREAT":
        return requester.kind in EMERGENCY_KINDS
    return requester.purpose in SECONDARY_USE and requester.kind == SECONDARY_KIND
