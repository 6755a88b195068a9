"""Page statements for a search, with keyset paging.

A page link carries the position of the row it continues from: the values of
the sort keys and the id of the last (``next``) or first (``previous``) row
shown, never an offset. So a link returns the rows that follow that position
in the sort order however many resources are created, changed or deleted
meanwhile: nothing is shown twice and nothing that stayed is skipped.

Missing sort values sort last, in both directions, on both databases.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.errors import InvalidRequest, Issue
from gateway.integers import MAX_BIGINT
from gateway.search.index import SORTED_BY_INDEX
from gateway.search.query import Condition, ReferenceCriterion, SearchQuery
from gateway.search.sql import SqlBuilder, selectivity
from gateway.store import Querier, StoredVersion


@dataclass(frozen=True)
class Position:
    """Where a page starts: after (``forward``) or before a row."""

    forward: bool
    keys: tuple[Any, ...]
    res_id: str

    def encode(self) -> str:
        payload = orjson.dumps({"f": self.forward, "k": list(self.keys), "i": self.res_id})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Position:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            keys, res_id = payload["k"], payload["i"]
            if not isinstance(keys, list) or not all(map(_bindable, keys)):
                raise TypeError("bad keys")
            if not _bindable(res_id) or not isinstance(res_id, str):
                raise TypeError("bad id")
            return cls(bool(payload["f"]), tuple(keys), res_id)
        except (ValueError, KeyError, TypeError) as exc:
            raise _bad_cursor() from exc


def _bindable(value: object) -> bool:
    """Whether a cursor's value is one both databases take as a parameter:
    no NUL in text (PostgreSQL), no integer past 64 bits (SQLite)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_BIGINT - 1 <= value <= MAX_BIGINT
    return value is None or isinstance(value, float)


def _fits(query: SearchQuery, position: Position) -> bool:
    """Whether a cursor holds a value for each of the search's sort keys
    (and, over several types, the type), each of its key's kind: a number
    for a number or quantity parameter, else text. PostgreSQL compares no
    others."""
    kinds = [key.param.type for key in query.sort]
    if len(query.types) > 1:
        kinds.append("string")  # the type, after the sort keys
    if len(position.keys) != len(kinds):
        return False
    for kind, value in zip(kinds, position.keys, strict=True):
        if value is not None and isinstance(value, str) == (kind in ("number", "quantity")):
            return False
    return True


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest(
        "_cursor is not a page position this search issued",
        code="GW-0330",
        issues=[Issue("value", "bad page cursor", ("_cursor",))],
    )


@dataclass(frozen=True)
class PageStatement:
    sql: str
    params: list[Any]
    key_count: int
    forward: bool  # False: rows come newest-last and must be reversed
    # Read in the sort index's order.
    by_index: bool = False
    # The same rows as statements run in turn until ``wanted`` are read
    # (``read_page``), where that costs less than the one statement.
    parts: tuple[tuple[str, list[Any]], ...] = ()
    wanted: int = 0


def read_page(reader: Querier, statement: PageStatement) -> list[Sequence[Any]]:
    """The rows of ``statement``: of its parts in turn, where it has them,
    no more read once it has its rows."""
    if not statement.parts:
        return list(reader.select(statement.sql, statement.params))
    rows: list[Sequence[Any]] = []
    for sql, params in statement.parts:
        rows.extend(reader.select(sql, params))
        if len(rows) >= statement.wanted:
            break
    return rows[: statement.wanted]


class Prefilter(Protocol):
    """What a requester could ever be shown, as SQL (``gateway.access.scope``):
    given the builder, the types searched and the columns naming a candidate
    (type, id), a condition true for every candidate some rule could show.
    ``probing``: written to test candidates one by one as they are read in
    an index's order (a page that stops early), rather than to drive the
    statement from the few rows the rules name."""

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
        """Not ``people``: but the records of the requester's people
        (``people``), which the statement reads by person."""
        ...

    def broad(self, reader: Querier) -> bool:
        """Whether the requester may see so much that candidates are best
        tested one by one (``probing``) than driven from what it sees."""
        ...

    def people(self, builder: SqlBuilder, types: Sequence[str]) -> str | None:
        """A statement of the ids of the people whose records (of
        ``types``) the requester may be shown for being theirs, whatever
        else closes them; ``None`` when it is shown none for that."""
        ...

    def records(self, builder: SqlBuilder, types: Sequence[str]) -> str | None:
        """A statement of the records (type and id) of those people that
        some rule could show the requester; ``None`` as ``people``."""
        ...


def _filtered(
    query: SearchQuery,
    builder: SqlBuilder,
    prefilter: Prefilter | None,
    probing: bool = False,
    people: bool = True,
) -> str:
    types = query.types or (query.res_type,)
    where = [f"c.res_type IN ({', '.join('?' for _ in types)})", "c.deleted = ?"]
    builder.params.extend([*types, False])
    if prefilter is not None:
        where.append(
            prefilter(
                builder,
                types,
                "c.res_type",
                "c.res_id",
                probing=probing,
                people=people,
            )
        )
    driver = None
    if query.compartment is not None:
        where.append(_in_compartment(query, types, builder))
    elif query.conditions:
        driver = min(query.conditions, key=selectivity)
    for condition in query.conditions:
        where.append(
            builder.condition(
                condition, types, "c.res_type", "c.res_id", drives=condition is driver
            )
        )
    return " AND ".join(where)


def _in_compartment(query: SearchQuery, types: tuple[str, ...], builder: SqlBuilder) -> str:
    """Any of the compartment's reference parameters points at its owner
    (and the owner is in its own compartment)."""
    assert query.compartment is not None
    owner_type, owner_id, params = query.compartment
    target = ReferenceCriterion(owner_type, owner_id)
    several = len(types) > 1
    alternatives = []
    members = [(res_type, param) for res_type, param in params if res_type in types]
    if several and members and all(param.type == "reference" for _, param in members):
        # One lookup of the owner's references for every type at once.
        pairs = [(res_type, param.code) for res_type, param in members]
        if builder.dialect == "postgres" and owner_type in types:
            # The owner listed with them: ORed beside the list, PostgreSQL
            # tested every live resource of the types against it (all of a
            # million for $everything).
            return builder.referring_to(target, pairs, "c.res_type", "c.res_id", itself=True)
        alternatives.append(builder.referring_to(target, pairs, "c.res_type", "c.res_id"))
        members = []
    for res_type, param in members:
        # Placeholders are bound in the order they appear in the text.
        of_type = f"c.res_type = {builder.bind(res_type)} AND " if several else ""
        probe = builder.condition(
            Condition(param=param, values=(target,)), (res_type,), "c.res_type", "c.res_id"
        )
        alternatives.append(f"({of_type}{probe})")  # ids are unique per type only
    if owner_type in types:
        of_type = f"c.res_type = {builder.bind(owner_type)} AND " if several else ""
        alternatives.append(f"({of_type}c.res_id = {builder.bind(owner_id)})")
    return "(" + " OR ".join(alternatives or ["1 = 0"]) + ")"


def count_statement(
    query: SearchQuery,
    prefilter: Prefilter | None = None,
    at_most: int | None = None,
    *,
    probing: bool = False,
    dialect: str = "sqlite",
) -> tuple[str, list[Any]]:
    """How many resources match ``query`` (of those ``prefilter`` keeps);
    no more than ``at_most``, when given, so that the count stops there.
    ``dialect``: the database it is for (``Store.dialect``)."""
    builder = SqlBuilder(dialect)
    if prefilter is not None and not probing:
        by_person = _count_by_person(query, builder, prefilter, at_most)
        if by_person is not None:
            return by_person, builder.params
    where = _filtered(query, builder, prefilter, probing)
    if at_most is None:
        return f"SELECT COUNT(*) FROM resource_current c WHERE {where}", builder.params
    return (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM resource_current c WHERE {where} "
        f"LIMIT {int(at_most)}) n",
        builder.params,
    )


def _count_by_person(
    query: SearchQuery, builder: SqlBuilder, prefilter: Prefilter, at_most: int | None
) -> str | None:
    """``count_statement`` for a requester shown records for whose they
    are: the records of its people, read by person (each part stopping at
    ``at_most``), and those any other rule could show it, less repeats.
    Where one list of both was read whole before the count could stop."""
    types = query.types or (query.res_type,)
    records = prefilter.records(builder, types)
    if records is None:
        return None
    limit = "" if at_most is None else f" LIMIT {int(at_most)}"
    theirs = (
        f"SELECT c.res_type, c.res_id FROM ({records}) r JOIN resource_current c "
        f"ON c.res_type = r.res_type AND c.res_id = r.res_id "
        f"WHERE {_filtered(query, builder, None)}{limit}"
    )
    others = (
        f"SELECT c.res_type, c.res_id FROM resource_current c "
        f"WHERE {_filtered(query, builder, prefilter, people=False)}{limit}"
    )
    both = f"SELECT * FROM ({theirs}) t UNION SELECT * FROM ({others}) o"
    return f"SELECT COUNT(*) FROM (SELECT 1 FROM ({both}) b{limit}) n"


def _sort_keys(query: SearchQuery, builder: SqlBuilder) -> list[tuple[str, bool]]:
    """(SQL expression, descending) of each sort key; a search over several
    types also orders by type, before the id that ends every order."""
    keys = [
        (builder.sort_expression(k, "c.res_type", "c.res_id"), k.descending) for k in query.sort
    ]
    if len(query.types) > 1:
        keys.append(("c.res_type", False))
    return keys


def sorted_by_index(query: SearchQuery) -> bool:
    """Whether a page of ``query`` can read its rows in the order of the
    sort index (``search_sort``): one type, one sort key, one the index
    keeps (``SORTED_BY_INDEX``)."""
    return (
        len(query.types) <= 1
        and len(query.sort) == 1
        and query.sort[0].param.code in SORTED_BY_INDEX
        and query.compartment is None
    )


def page_statement(
    query: SearchQuery,
    position: Position | None,
    limit: int,
    prefilter: Prefilter | None = None,
    *,
    by_index: bool = False,
    probing: bool = False,
    dialect: str = "sqlite",
) -> PageStatement:
    """The rows of one page (``limit`` of them, plus one to tell whether more
    follow): ``(res_id, seq, sort keys..., version, last_updated, content,
    res_type)``, of those ``prefilter`` keeps. ``by_index`` reads them in
    the order of the sort index, where ``sorted_by_index`` allows: best when
    many rows match, as the database stops at the page; when few do,
    reading them and sorting them is cheaper. ``dialect``: the database it
    is for (``Store.dialect``)."""
    if position is not None and not _fits(query, position):
        raise _bad_cursor()
    if by_index and sorted_by_index(query):
        return _by_sort_index(query, position, limit, prefilter)
    if prefilter is not None and not probing and sorted_by_index(query):
        by_person = _by_person(query, position, limit, prefilter)
        if by_person is not None:
            return by_person
    builder = SqlBuilder(dialect)
    inner, keys = _candidates(query, builder, prefilter, probing)
    forward = position is None or position.forward
    outer_where = ""
    if position is not None:
        if len(position.keys) != len(keys):
            raise _bad_cursor()
        outer_where = "WHERE " + _after(keys, builder, position)
    order = _order(keys, forward)
    sort_columns = "".join(f", q.k{i}" for i in range(len(keys)))
    sql = (
        f"SELECT q.res_id, q.seq{sort_columns}, v.version, v.last_updated, v.content, "
        f"q.res_type FROM ({inner}) q JOIN resource_version v ON v.seq = q.seq {outer_where} "
        f"ORDER BY {order} LIMIT {int(limit) + 1}"
    )
    return PageStatement(sql, builder.params, len(keys), forward)


def _candidates(
    query: SearchQuery,
    builder: SqlBuilder,
    prefilter: Prefilter | None,
    probing: bool = False,
    people: bool = True,
) -> tuple[str, list[tuple[str, bool]]]:
    """A statement of the candidates ``(res_type, res_id, seq, k0...)``
    with their sort keys, unordered, and (expression, descending) of each key."""
    sort_row = ""
    if sorted_by_index(query):
        # The one key the sort index keeps, read from its row: a column,
        # where working it out from the values took a subquery per
        # candidate (which PostgreSQL ran twice, for the key and for
        # whether it is missing). Placeholders are bound in text order.
        key = query.sort[0]
        k = builder.alias("k")
        keys = [(f"{k}.{'desc_key' if key.descending else 'asc_key'}", key.descending)]
        sort_row = (
            f" LEFT JOIN search_sort {k} ON {k}.res_type = c.res_type "
            f"AND {k}.res_id = c.res_id AND {k}.param = {builder.bind(key.param.code)}"
        )
    else:
        keys = _sort_keys(query, builder)
    key_columns = "".join(f", {expr} AS k{i}" for i, (expr, _) in enumerate(keys))
    where = _filtered(query, builder, prefilter, probing, people)
    inner = (
        f"SELECT c.res_type, c.res_id, c.seq{key_columns} "
        f"FROM resource_current c{sort_row} WHERE {where}"
    )
    return inner, keys


def _order(keys: Sequence[tuple[str, bool]], forward: bool) -> str:
    """ORDER BY of rows ``q`` with keys ``k0...``: missing keys last, ties
    by id; reversed going back (``forward`` false)."""
    order = []
    for i, (_, key_descending) in enumerate(keys):
        descending = key_descending != (not forward)
        order.append(f"(q.k{i} IS NULL) {'ASC' if forward else 'DESC'}")
        order.append(f"q.k{i} {'DESC' if descending else 'ASC'}")
    order.append(f"q.res_id {'ASC' if forward else 'DESC'}")
    return ", ".join(order)


def _by_person(
    query: SearchQuery, position: Position | None, limit: int, prefilter: Prefilter
) -> PageStatement | None:
    """``page_statement`` for one sort key the sort index keeps, for a
    requester shown records for whose they are (``Prefilter.people``):
    its people's sort rows read person by person (``search_sort.person``)
    and the page taken from them, and the rows any other rule could show
    it, merged. Where the candidates of every person it cares for were
    read, their keys found and all sorted, to show twenty.

    Those rows are not tested for legal restriction (which the engine
    refuses, as the pre-filter would), so that the page is taken from the
    index alone; ``None`` where no such rule applies."""
    builder = SqlBuilder()
    key = query.sort[0]
    column = "desc_key" if key.descending else "asc_key"
    types = (query.res_type,)
    forward = position is None or position.forward
    keys = [(column, key.descending)]
    if position is not None and len(position.keys) != 1:
        raise _bad_cursor()
    s = builder.alias("s")
    # Placeholders are bound in the order they appear in the text.
    people = prefilter.people(builder, types)
    if people is None:
        return None
    rows = (
        f"SELECT {s}.res_type, {s}.res_id, {s}.{column} AS k0 FROM search_sort {s} "
        f"WHERE {s}.person IN ({people}) AND {s}.res_type = {builder.bind(query.res_type)} "
        f"AND {s}.param = {builder.bind(key.param.code)}"
    )
    for condition in query.conditions:
        probe = builder.condition(condition, types, f"{s}.res_type", f"{s}.res_id", drives=False)
        rows += f" AND {probe}"
    order = _order(keys, forward)
    page = f"LIMIT {int(limit) + 1}"

    def after() -> str:
        return "" if position is None else f" WHERE {_after(keys, builder, position)}"

    first = f"SELECT q.res_type, q.res_id, q.k0 FROM ({rows}) q{after()} ORDER BY {order} {page}"
    theirs = (
        f"SELECT c.res_type, c.res_id, c.seq, q.k0 FROM ({first}) q JOIN resource_current c "
        f"ON c.res_type = q.res_type AND c.res_id = q.res_id "
        f"WHERE c.deleted = {builder.bind(False)}"
    )
    inner, _ = _candidates(query, builder, prefilter, people=False)
    others = f"SELECT * FROM ({inner}) q{after()} ORDER BY {order} {page}"
    both = f"SELECT * FROM ({theirs}) t UNION SELECT * FROM ({others}) o"
    sql = (
        f"SELECT q.res_id, q.seq, q.k0, v.version, v.last_updated, v.content, q.res_type "
        f"FROM ({both}) q JOIN resource_version v ON v.seq = q.seq ORDER BY {order} {page}"
    )
    return PageStatement(sql, builder.params, 1, forward)


def _by_sort_index(
    query: SearchQuery, position: Position | None, limit: int, prefilter: Prefilter | None
) -> PageStatement:
    """``page_statement`` for one sort key the sort index keeps: the rows
    with a key, read from the index in order, then those without, by id;
    each part stops at the page, and the two are merged as the generic
    statement orders them (missing keys last, ties by id)."""
    builder = SqlBuilder()
    key = query.sort[0]
    column = "desc_key" if key.descending else "asc_key"
    forward = position is None or position.forward
    # The direction the key is read in: a page back reads the order reversed.
    descending = key.descending == forward
    key_order = "DESC" if descending else "ASC"
    id_order = "ASC" if forward else "DESC"
    parts: list[tuple[str, int]] = []  # each part's text, and where its values end
    at = position.keys[0] if position is not None else None
    if position is None or at is not None or not forward:
        # Rows with a key: none follow a position among the rows without.
        # (Placeholders are bound in the order they appear in the text.)
        s = builder.alias("s")
        where = _filtered(query, builder, prefilter, probing=True)
        head = (
            f"SELECT c.res_type, c.res_id, c.seq, {s}.{column} AS k0 FROM search_sort {s} "
            f"JOIN resource_current c ON c.res_type = {s}.res_type AND c.res_id = {s}.res_id "
            f"WHERE {where} AND {s}.res_type = {builder.bind(query.res_type)} "
            f"AND {s}.param = {builder.bind(key.param.code)} AND {s}.{column} IS NOT NULL"
        )
        if position is not None and at is not None:
            beyond = "<" if descending else ">"
            value = builder.bind(at)
            head += (
                f" AND ({s}.{column} {beyond} {value} OR ({s}.{column} = {builder.bind(at)} "
                f"AND {s}.res_id {'>' if forward else '<'} {builder.bind(position.res_id)}))"
            )
        # Ordered by the sort row's own columns, so that the index gives the
        # order whole (ties on a common key, a surname, are not sorted apart).
        parts.append(
            (
                f"{head} ORDER BY {s}.{column} {key_order}, {s}.res_id {id_order} "
                f"LIMIT {int(limit) + 1}",
                len(builder.params),
            )
        )
    if position is None or forward or at is None:
        # Rows without a key (their sort row's keys are empty, both: the
        # index of them is on ``asc_key``): after every row with one, going
        # forward; by id.
        m = builder.alias("m")
        where = _filtered(query, builder, prefilter, probing=True)
        head = (
            f"SELECT c.res_type, c.res_id, c.seq, NULL AS k0 FROM search_sort {m} "
            f"JOIN resource_current c ON c.res_type = {m}.res_type AND c.res_id = {m}.res_id "
            f"WHERE {where} AND {m}.res_type = {builder.bind(query.res_type)} "
            f"AND {m}.param = {builder.bind(key.param.code)} AND {m}.asc_key IS NULL"
        )
        if position is not None and at is None:
            head += f" AND {m}.res_id {'>' if forward else '<'} {builder.bind(position.res_id)}"
        parts.append(
            (f"{head} ORDER BY {m}.res_id {id_order} LIMIT {int(limit) + 1}", len(builder.params))
        )
    nulls = "ASC" if forward else "DESC"
    order = f"ORDER BY (q.k0 IS NULL) {nulls}, q.k0 {key_order}, q.res_id {id_order}"
    columns = "q.res_id, q.seq, q.k0, v.version, v.last_updated, v.content, q.res_type"
    # Each part alone, in the order they merge (the keyless last going
    # forward, first going back): the page often needs only the first, and
    # PostgreSQL plans each part's consent probes afresh (2 ms a part).
    alone = []
    start = 0
    for part, end in parts:
        alone.append(
            (
                f"SELECT {columns} FROM ({part}) q JOIN resource_version v ON v.seq = q.seq "
                f"{order} LIMIT {int(limit) + 1}",
                builder.params[start:end],
            )
        )
        start = end
    if not forward:
        alone.reverse()
    union = " UNION ALL ".join(f"SELECT * FROM ({part}) p{i}" for i, (part, _) in enumerate(parts))
    sql = (
        f"SELECT {columns} FROM ({union}) q JOIN resource_version v ON v.seq = q.seq "
        f"{order} LIMIT {int(limit) + 1}"
    )
    return PageStatement(
        sql, builder.params, 1, forward, by_index=True, parts=tuple(alone), wanted=limit + 1
    )


def _after(keys: list[tuple[str, bool]], builder: SqlBuilder, position: Position) -> str:
    """Rows strictly after (or, going back, before) ``position`` in the sort.
    Built term by term, so that each placeholder is bound in text order."""

    def equal_up_to(i: int) -> list[str]:
        terms = []
        for j in range(i):
            value = position.keys[j]
            column = f"q.k{j}"
            terms.append(
                f"{column} IS NULL" if value is None else f"{column} = {builder.bind(value)}"
            )
        return terms

    disjuncts = []
    for i, (_, descending) in enumerate(keys):
        value = position.keys[i]
        column = f"q.k{i}"
        ascending = not descending
        if position.forward:
            if value is None:
                continue  # nothing sorts after a missing value but by later keys
            terms = equal_up_to(i)
            beyond = ">" if ascending else "<"
            terms.append(f"({column} {beyond} {builder.bind(value)} OR {column} IS NULL)")
        else:
            terms = equal_up_to(i)
            if value is None:
                terms.append(f"{column} IS NOT NULL")
            else:
                before = "<" if ascending else ">"
                terms.append(f"{column} {before} {builder.bind(value)}")
        disjuncts.append(" AND ".join(terms))
    terms = equal_up_to(len(keys))
    comparison = ">" if position.forward else "<"
    terms.append(f"q.res_id {comparison} {builder.bind(position.res_id)}")
    disjuncts.append(" AND ".join(terms))
    return "(" + " OR ".join(f"({d})" for d in disjuncts) + ")"


def row_version(row: Sequence[Any], key_count: int) -> StoredVersion:
    """The stored version a ``page_statement`` row holds."""
    content = row[4 + key_count]
    return StoredVersion(
        res_type=str(row[5 + key_count]),
        res_id=str(row[0]),
        version=int(row[2 + key_count]),
        last_updated=str(row[3 + key_count]),
        method="GET",
        content=bytes(content) if content is not None else None,
        seq=int(row[1]),
        current=True,  # a search reads resource_current
    )


def row_position(row: Sequence[Any], key_count: int, forward: bool) -> Position:
    """The keyset position just past (or before) a ``page_statement`` row."""
    keys = tuple(row[2 : 2 + key_count])
    return Position(forward, keys, str(row[0]))


def scan(
    reader: Querier,
    query: SearchQuery,
    keep: Callable[[StoredVersion], bool],
    ahead: Callable[[Sequence[StoredVersion]], None] | None = None,
    prefilter: Prefilter | None = None,
    probing: bool = False,
) -> Iterator[StoredVersion]:
    """Every match of ``query`` that ``prefilter`` and then ``keep`` keep
    (the requester may see), read in batches; ``ahead`` is shown each batch
    before ``keep`` decides it (to read at once what those decisions need)."""
    position: Position | None = None
    batch = 500
    while True:
        statement = page_statement(query, position, batch, prefilter, probing=probing)
        rows = reader.select(statement.sql, statement.params)
        page = rows[:batch]
        versions = [row_version(row, statement.key_count) for row in page]
        if ahead is not None:
            ahead(versions)
        yield from filter(keep, versions)
        if len(rows) <= batch:
            return
        position = row_position(page[-1], statement.key_count, True)
