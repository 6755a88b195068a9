"""Search conditions as SQL over the index tables, for SQLite and PostgreSQL.

Every condition becomes an ``EXISTS`` (or ``NOT EXISTS``) subquery on one
index table, correlated with the resource it tests, so conditions combine
freely: AND between parameters, OR between a parameter's values, chains as a
join through ``search_reference`` to a live target, ``_has`` as the same join
the other way. Statements use ``?`` placeholders; each store compiles them to
its driver's style. Searches never read resource JSON.

Comparison semantics (https://hl7.org/fhir/R4/search.html#prefix): a date
value is the half-open range its precision implies, and so is every indexed
date; prefixes compare the two ranges as the specification defines. Numbers
and quantities compare with the implicit range of the significant figures for
``eq``/``ne`` and with the value itself otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue
from gateway.search.query import (
    Comparison,
    CompositeCriterion,
    Condition,
    OfTypeCriterion,
    ReferenceCriterion,
    SortKey,
    TokenCriterion,
)
from gateway.store.values import normalise_text

TABLES = {
    "token": "search_token",
    "string": "search_string",
    "date": "search_date",
    "reference": "search_reference",
    "quantity": "search_quantity",
    "number": "search_number",
    "uri": "search_uri",
    "composite": "search_composite",
}
SEARCHABLE_TYPES = frozenset(TABLES)
# The highest code point: a prefix p matches values in [p, p + _TOP).
_TOP = "\U0010ffff"
_SORT_COLUMN = {
    "token": "code",
    "string": "value",
    "date": "low",
    "reference": "target_id",
    "quantity": "value",
    "number": "value",
    "uri": "value",
    "composite": "a_code",
}


def listed_length(n: int) -> int:
    """How many values a list of ``n`` is bound as in ``IN (...)`` (the last
    repeated, which changes no answer): ``n`` up to 8, then the next multiple
    of 8 up to 64, then of 64. Each distinct statement text is one SQLite
    prepares and each connection caches (128 of them, a search's tens of
    KiB each); lists as long as the data (a person's records, named in
    ``$summary``'s Provenance search) made a new text for nearly every
    request, and a worker's memory grew with the churn of its caches."""
    if n <= 8:
        return n
    step = 8 if n <= 64 else 64
    return -(-n // step) * step


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def selectivity(cond: Condition) -> int:
    """A rough rank of how few resources a condition keeps (lower: fewer),
    to pick the one that drives a search. Equality on ids, references and
    codes is narrow; ranges over dates and numbers, negations and :missing
    are broad."""
    if cond.reverse is not None or cond.chain is not None:
        return 3
    assert cond.param is not None
    if cond.modifier in ("missing", "not", "text", "contains") or cond.negate:
        return 6
    if cond.param.code == "_id":
        return 0
    rank = {"reference": 1, "token": 1, "uri": 2, "string": 2, "composite": 2}
    return rank.get(cond.param.type, 4)


class SqlBuilder:
    """Accumulates parameters while conditions are turned into SQL text."""

    def __init__(self, dialect: str = "sqlite") -> None:
        self.params: list[Any] = []
        self._aliases = 0
        # The database the statement is for ("sqlite" or "postgres"), where
        # their planners want a condition written differently.
        self.dialect = dialect

    def bind(self, value: Any) -> str:
        self.params.append(float(value) if isinstance(value, Decimal) else value)
        return "?"

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    # -- conditions ----------------------------------------------------------------

    def condition(
        self,
        cond: Condition,
        types: Sequence[str],
        type_expr: str,
        id_expr: str,
        *,
        drives: bool = True,
    ) -> str:
        """SQL true when the resource ``(type_expr, id_expr)``, one of
        ``types``, meets ``cond``.

        The condition that ``drives`` a search is written as
        ``id IN (SELECT id FROM <index> WHERE ...)``: the database reads the
        matching ids from the index once and fetches the candidates by key.
        The others are correlated ``EXISTS`` probes on the candidates, by
        resource and parameter, so a broad condition (a date range over a
        whole type) costs one index probe per candidate instead of a list of
        every resource it matches."""
        negate = cond.negate
        if cond.param is not None and cond.modifier == "missing" and cond.chain is None:
            negate = bool(cond.values[0])
        if not drives:
            probe = self._subquery(cond, types, select_type=False, owner=(type_expr, id_expr))
            return f"{'NOT ' if negate else ''}EXISTS ({probe})"
        subquery = self._subquery(cond, types, select_type=len(types) > 1, owner=None)
        operator = "NOT IN" if negate else "IN"
        if len(types) > 1:
            return f"({type_expr}, {id_expr}) {operator} ({subquery})"
        return f"{id_expr} {operator} ({subquery})"

    def referring_to(
        self,
        target: ReferenceCriterion,
        members: Sequence[tuple[str, str]],
        type_expr: str,
        id_expr: str,
        itself: bool = False,
    ) -> str:
        """SQL true when the resource ``(type_expr, id_expr)`` refers to
        ``target`` by one of the reference parameters ``members`` names
        ((type, parameter code) pairs): membership of a compartment of
        several types, as one lookup of the target's references (the index
        on ``(target_type, target_id)``) rather than a subquery per pair,
        which PostgreSQL and SQLite could only OR together over every
        resource of those types. ``itself``: or is the target, listed with
        its references, so that the list drives the statement (PostgreSQL
        only: SQLite drives from the list ORed with the target's key, and
        no longer from a list with the target in it)."""
        r = self.alias("r")
        # Placeholders are bound in the order they appear in the text.
        head = (
            f"SELECT {r}.res_type, {r}.res_id FROM search_reference {r} "
            f"WHERE {self._references(r, (target,))}"
        )
        codes: dict[str, list[str]] = {}
        for res_type, code in members:
            codes.setdefault(res_type, []).append(code)
        kinds = [
            f"({r}.res_type = {self.bind(res_type)} AND {self._in(f'{r}.param', of_type)})"
            for res_type, of_type in codes.items()
        ]
        listed = f"{head} AND ({' OR '.join(kinds)})"
        if itself:
            assert target.target_type is not None and target.target_id is not None
            listed += f" UNION ALL SELECT {self.bind(target.target_type)}, "
            listed += self.bind(target.target_id)
        return f"({type_expr}, {id_expr}) IN ({listed})"

    def _types(self, types: Sequence[str]) -> str:
        return f"IN ({', '.join(self.bind(t) for t in types)})"

    def _subquery(
        self,
        cond: Condition,
        types: Sequence[str],
        *,
        select_type: bool,
        owner: tuple[str, str] | None,
    ) -> str:
        """The SELECT behind a condition: of the matching ids (``owner`` is
        ``None``), or of 1 for the resource ``owner`` names (a probe)."""
        if cond.reverse is not None:
            return self._has(cond, types, select_type, owner)
        param = cond.param
        assert param is not None
        if cond.chain is not None:
            return self._chain(cond, types, select_type, owner)
        table = TABLES.get(param.type)
        if table is None:
            raise InvalidRequest(
                f"searching by the {param.type} parameter {param.code!r} is not supported",
                code="GW-0322",
                issues=[Issue("not-supported", f"{param.type} search", (param.code,))],
            )
        t = self.alias("t")
        # identifier:of-type has rows of its own (gateway.search.index.OF_TYPE)
        indexed_as = param.code + (":of-type" if cond.modifier == "of-type" else "")
        if owner is None:
            columns = f"{t}.res_type, {t}.res_id" if select_type else f"{t}.res_id"
            head = (
                f"SELECT {columns} FROM {table} {t} WHERE {t}.res_type {self._types(types)} "
                f"AND {t}.param = {self.bind(indexed_as)}"
            )
        else:
            head = (
                f"SELECT 1 FROM {table} {t} WHERE {t}.res_type = {owner[0]} "
                f"AND {t}.res_id = {owner[1]} AND {t}.param = {self.bind(indexed_as)}"
            )
        if cond.modifier == "missing":
            return head
        if param.type == "reference" and cond.modifier != "identifier":
            return f"{head} AND {self._references(t, cond.values)}"
        if param.type == "token" and cond.modifier is None and len(cond.values) > 1:
            codes = [v.code for v in cond.values if isinstance(v, TokenCriterion)]
            if len(codes) == len(cond.values) and all(
                v.system is None and v.code is not None
                for v in cond.values
                if isinstance(v, TokenCriterion)
            ):
                # Codes of any system (an ``_id`` list, say): one IN, not an
                # OR per value, which SQLite nests past its depth limit.
                return f"{head} AND {self._in(f'{t}.code', dict.fromkeys(codes))}"
        alternatives = [self._value(param.type, cond.modifier, t, v) for v in cond.values]
        return f"{head} AND ({' OR '.join(alternatives)})"

    def _chain(
        self,
        cond: Condition,
        types: Sequence[str],
        select_type: bool,
        owner: tuple[str, str] | None,
    ) -> str:
        assert cond.chain is not None and cond.param is not None
        target_type, inner = cond.chain
        r, tc = self.alias("r"), self.alias("c")
        if owner is None:
            columns = f"{r}.res_type, {r}.res_id" if select_type else f"{r}.res_id"
            whose = f"{r}.res_type {self._types(types)}"
        else:
            columns = "1"
            whose = f"{r}.res_type = {owner[0]} AND {r}.res_id = {owner[1]}"
        head = (
            f"SELECT {columns} FROM search_reference {r} JOIN resource_current {tc} "
            f"ON {tc}.res_type = {r}.target_type AND {tc}.res_id = {r}.target_id "
            f"WHERE {whose} AND {r}.param = {self.bind(cond.param.code)} "
            f"AND {r}.target_type = {self.bind(target_type)} "
            f"AND {tc}.deleted = {self.bind(False)}"
        )
        inner_sql = self.condition(inner, (target_type,), f"{r}.target_type", f"{r}.target_id")
        return f"{head} AND {inner_sql}"

    def _has(
        self,
        cond: Condition,
        types: Sequence[str],
        select_type: bool,
        owner: tuple[str, str] | None,
    ) -> str:
        assert cond.reverse is not None
        source_type, ref_code, inner = cond.reverse
        r, sc = self.alias("r"), self.alias("c")
        if owner is None:
            columns = f"{r}.target_type, {r}.target_id" if select_type else f"{r}.target_id"
        else:
            columns = "1"
        head = (
            f"SELECT {columns} FROM search_reference {r} JOIN resource_current {sc} "
            f"ON {sc}.res_type = {r}.res_type AND {sc}.res_id = {r}.res_id "
            f"WHERE {r}.res_type = {self.bind(source_type)} "
            f"AND {r}.param = {self.bind(ref_code)} "
        )
        if owner is None:
            head += f"AND {r}.target_type {self._types(types)} "
        else:
            head += f"AND {r}.target_type = {owner[0]} AND {r}.target_id = {owner[1]} "
        head += f"AND {sc}.deleted = {self.bind(False)}"
        inner_sql = self.condition(inner, (source_type,), f"{r}.res_type", f"{r}.res_id")
        return f"{head} AND {inner_sql}"

    # -- values ----------------------------------------------------------------------

    def _value(self, kind: str, modifier: str | None, t: str, value: Any) -> str:
        if kind == "string":
            assert isinstance(value, str)
            if modifier == "exact":
                return f"{t}.exact = {self.bind(value)}"
            folded = normalise_text(value)
            if modifier == "contains":
                pattern = f"%{like_escape(folded)}%"
                return f"{t}.value LIKE {self.bind(pattern)} ESCAPE '\\'"
            return f"({t}.value >= {self.bind(folded)} AND {t}.value < {self.bind(folded + _TOP)})"
        if kind == "token":
            return self._token(modifier, t, value)
        if kind == "uri":
            assert isinstance(value, str)
            if modifier == "below":
                return (
                    f"({t}.value >= {self.bind(value)} AND {t}.value < {self.bind(value + _TOP)})"
                )
            if modifier == "above":
                probe = self.bind(value)
                return f"substr({probe}, 1, length({t}.value)) = {t}.value"
            return f"{t}.value = {self.bind(value)}"
        if kind == "reference":
            return self._reference(modifier, t, value)
        if kind == "composite":
            assert isinstance(value, CompositeCriterion)
            return self._composite(t, value)
        if kind == "date":
            assert isinstance(value, Comparison)
            return self._date(t, value)
        assert isinstance(value, Comparison)
        clause = self._number(t, value)
        if kind == "quantity" and (value.system or value.code):
            if value.system:
                clause += f" AND {t}.system = {self.bind(value.system)}"
                if value.code:
                    clause += f" AND {t}.code = {self.bind(value.code)}"
            elif value.code:
                unit = value.code
                clause += f" AND ({t}.code = {self.bind(unit)} OR {t}.unit = {self.bind(unit)})"
        return f"({clause})"

    def _composite(self, t: str, value: CompositeCriterion) -> str:
        """Both components matched on the same indexed element (one row)."""
        first, second = value.first, value.second
        terms = []
        if isinstance(first, TokenCriterion):
            if first.code is not None:
                terms.append(f"{t}.a_code = {self.bind(first.code)}")
            if first.system == "":
                terms.append(f"{t}.a_system IS NULL")
            elif first.system is not None:
                terms.append(f"{t}.a_system = {self.bind(first.system)}")
        else:
            terms.append(f"{t}.a_code = {self.bind(first.target_id)}")
            if first.target_type is not None:
                terms.append(f"{t}.a_system = {self.bind(first.target_type)}")
        if isinstance(second, TokenCriterion):
            if second.code is not None:
                terms.append(f"{t}.b_code = {self.bind(second.code)}")
            if second.system:
                terms.append(f"{t}.b_system = {self.bind(second.system)}")
        elif isinstance(second, Comparison) and value.second_type == "date":
            terms.append(self._date(t, second, "b_low", "b_high"))
        elif isinstance(second, Comparison):
            terms.append(f"({self._number(t, second, 'b_value')})")
            if second.system:
                terms.append(f"{t}.b_system = {self.bind(second.system)}")
            if second.code:
                terms.append(f"{t}.b_code = {self.bind(second.code)}")
        else:
            folded = normalise_text(str(second))
            low, high = self.bind(folded), self.bind(folded + _TOP)
            terms.append(f"({t}.b_string >= {low} AND {t}.b_string < {high})")
        return "(" + " AND ".join(terms or ["1 = 1"]) + ")"

    def _token(self, modifier: str | None, t: str, value: Any) -> str:
        if modifier == "text":
            assert isinstance(value, str)
            pattern = f"%{like_escape(normalise_text(value))}%"
            return f"{t}.text LIKE {self.bind(pattern)} ESCAPE '\\'"
        if isinstance(value, OfTypeCriterion):
            typed = f"{value.type_system}|{value.type_code}|{value.value}"
            return f"{t}.code = {self.bind(typed)}"
        assert isinstance(value, TokenCriterion)
        parts = []
        if value.code is not None:
            parts.append(f"{t}.code = {self.bind(value.code)}")
        if value.system == "":
            parts.append(f"{t}.system IS NULL")
        elif value.system is not None:
            parts.append(f"{t}.system = {self.bind(value.system)}")
        return "(" + " AND ".join(parts or ["1 = 1"]) + ")"

    def _reference(self, modifier: str | None, t: str, value: Any) -> str:
        """``:identifier``; other reference values are matched all at once
        (``_references``)."""
        assert modifier == "identifier" and isinstance(value, TokenCriterion)
        parts = []
        if value.code is not None:
            parts.append(f"{t}.id_value = {self.bind(value.code)}")
        if value.system:
            parts.append(f"{t}.id_system = {self.bind(value.system)}")
        return "(" + " AND ".join(parts or ["1 = 1"]) + ")"

    def _references(self, t: str, values: Sequence[Any]) -> str:
        """Any of ``values`` (``[type]/id``, ``id`` or an absolute URL).

        Ids are grouped by type and led by one ``target_id IN (...)`` of
        every id, so that the index on ``(res_type, param, target_id,
        target_type)`` reads only the rows of those ids, on SQLite and
        PostgreSQL alike; the condition after it keeps each id to its own
        type. (An OR of (id, type) pairs made SQLite read every row of the
        parameter, and PostgreSQL AND those rows with one index scan per
        pair.)"""
        urls: dict[str, None] = {}
        untyped: dict[str | None, None] = {}
        typed: dict[str, dict[str | None, None]] = {}
        for value in values:
            assert isinstance(value, ReferenceCriterion)
            if value.url is not None:
                urls[value.url] = None
            elif value.target_type is None:
                untyped[value.target_id] = None
            else:
                typed.setdefault(value.target_type, {})[value.target_id] = None
        alternatives = []
        if urls:
            alternatives.append(self._in(f"{t}.url", urls))
        if untyped or typed:
            every = dict(untyped)
            for ids in typed.values():
                every.update(ids)
            clause = self._in(f"{t}.target_id", every)
            if typed:
                kinds = [self._in(f"{t}.target_id", untyped)] if untyped else []
                # a type named with every id needs no list of its own
                whole = [k for k, ids in typed.items() if len(ids) == len(every)]
                if whole:
                    kinds.append(self._in(f"{t}.target_type", whole))
                pairs = [
                    f"{target_type}/{res_id}"
                    for target_type, ids in typed.items()
                    if len(ids) < len(every)
                    for res_id in ids
                ]
                if pairs:
                    # No type holds a "/", so "Type/id" names one pair. One
                    # flat list: an OR of a list per type cost PostgreSQL
                    # 3.3 ms to plan for 300 targets (1.5 ms so).
                    kinds.append(self._in(f"({t}.target_type || '/' || {t}.target_id)", pairs))
                clause += f" AND ({' OR '.join(kinds)})"
            alternatives.append(clause)
        if len(alternatives) == 1:
            return f"({alternatives[0]})"
        return "(" + " OR ".join(f"({a})" for a in alternatives or ["1 = 0"]) + ")"

    def _in(self, column: str, values: Collection[Any]) -> str:
        if len(values) == 1:
            return f"{column} = {self.bind(next(iter(values)))}"
        listed = list(values)
        listed += listed[-1:] * (listed_length(len(listed)) - len(listed))
        return f"{column} IN ({', '.join(self.bind(v) for v in listed)})"

    def _date(self, t: str, value: Comparison, low_col: str = "low", high_col: str = "high") -> str:
        lo, hi = f"{t}.{low_col}", f"{t}.{high_col}"
        low, high = str(value.low), str(value.high)
        prefix = value.prefix
        if prefix == "ap":
            low, high = _approximately(low, high)
            prefix = "overlaps"

        def eq() -> str:
            return f"({lo} >= {self.bind(low)} AND {hi} <= {self.bind(high)})"

        if prefix == "eq":
            return eq()
        if prefix == "ne":
            return f"NOT {eq()}"
        if prefix == "gt":
            return f"{hi} > {self.bind(high)}"
        if prefix == "lt":
            return f"{lo} < {self.bind(low)}"
        if prefix == "ge":
            return f"({hi} > {self.bind(high)} OR {eq()})"
        if prefix == "le":
            return f"({lo} < {self.bind(low)} OR {eq()})"
        if prefix == "sa":
            return f"{lo} >= {self.bind(high)}"
        if prefix == "eb":
            return f"{hi} <= {self.bind(low)}"
        return f"({lo} < {self.bind(high)} AND {hi} > {self.bind(low)})"

    def _number(self, t: str, value: Comparison, column_name: str = "value") -> str:
        low, high = Decimal(value.low), Decimal(value.high)
        exact = (low + high) / 2
        column = f"{t}.{column_name}"
        prefix = value.prefix
        if prefix == "eq":
            return f"{column} >= {self.bind(low)} AND {column} < {self.bind(high)}"
        if prefix == "ne":
            return f"NOT ({column} >= {self.bind(low)} AND {column} < {self.bind(high)})"
        if prefix in ("gt", "sa"):
            return f"{column} > {self.bind(exact)}"
        if prefix in ("lt", "eb"):
            return f"{column} < {self.bind(exact)}"
        if prefix == "ge":
            return f"{column} >= {self.bind(exact)}"
        if prefix == "le":
            return f"{column} <= {self.bind(exact)}"
        margin = abs(exact) / 10
        return (
            f"{column} >= {self.bind(exact - margin)} AND {column} <= {self.bind(exact + margin)}"
        )

    # -- sorting -------------------------------------------------------------------

    def sort_expression(self, key: SortKey, owner_type: str, owner_id: str) -> str:
        table = TABLES[key.param.type]
        column = _SORT_COLUMN[key.param.type]
        s = self.alias("s")
        pick = "MAX" if key.descending else "MIN"
        return (
            f"(SELECT {pick}({s}.{column}) FROM {table} {s} WHERE {s}.res_type = {owner_type} "
            f"AND {s}.res_id = {owner_id} AND {s}.param = {self.bind(key.param.code)})"
        )


def _approximately(low: str, high: str) -> tuple[str, str]:
    """``ap``: the value's range widened by a tenth of its distance from now
    (at least a day), as the specification leaves the margin to the server."""
    start = fhirjson.parse_instant(low)
    end = fhirjson.parse_instant(high)
    now = datetime.now(UTC)
    margin = max(abs(now - start) / 10, timedelta(days=1))
    return fhirjson.instant(start - margin), fhirjson.instant(end + margin)
