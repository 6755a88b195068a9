"""Finding audit entries: what auditors filter the log by (person,
organisation, client, date range, purpose, interaction, outcome, emergency
access), newest first, a page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue
from gateway.identifiers import CLIENT_SYSTEM as CLIENT
from gateway.identifiers import ODS_SYSTEM as ODS
from gateway.integers import whole_number
from gateway.store import Querier

_MAX_COUNT = 500


@dataclass(frozen=True)
class AuditQuery:
    patient: str | None = None
    org_ods: str | None = None
    client_id: str | None = None
    since: str | None = None  # recorded >= (an instant)
    until: str | None = None  # recorded < (an instant)
    purpose: str | None = None
    subtype: str | None = None
    outcome: str | None = None
    emergency: bool | None = None
    count: int = 50
    before: int | None = None  # the page after: entries older than this index


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"AuditEvent search parameter {name!r}: {message}",
        code="GW-0910",
        issues=[Issue("value", message, (name,))],
    )


def _instant(name: str, value: str) -> str:
    try:
        return fhirjson.instant(fhirjson.parse_instant(value))
    except ValueError:
        raise _bad(name, f"{value!r} is not a date or instant") from None


def parse_audit_query(params: Sequence[tuple[str, str]]) -> AuditQuery:
    """``patient``, ``agent`` (an organisation's ODS code, or
    ``agent:identifier=<system>|<value>`` for an organisation or a client),
    ``date`` (``ge``/``gt``/``le``/``lt`` prefixes), ``purpose``, ``subtype``,
    ``outcome``, ``emergency`` (true/false), ``_count``, ``_cursor``."""
    found: dict[str, object] = {}
    for name, value in params:
        if name == "_format":
            continue
        if name == "patient":
            found["patient"] = value.removeprefix("Patient/")
        elif name == "agent":
            found["org_ods"] = value.upper()
        elif name == "agent:identifier":
            system, _, code = value.partition("|")
            if system == ODS:
                found["org_ods"] = code.upper()
            elif system == CLIENT:
                found["client_id"] = code
            else:
                raise _bad(name, f"give an ODS code ({ODS}|...) or a client ({CLIENT}|...)")
        elif name == "date":
            prefix, moment = value[:2], value[2:]
            if prefix in ("ge", "gt"):
                found["since"] = _instant(name, moment)
            elif prefix in ("le", "lt"):
                found["until"] = _instant(name, moment)
            else:
                raise _bad(name, "give a range with ge, gt, le or lt")
        elif name in ("purpose", "subtype", "outcome"):
            found[name] = value.rpartition("|")[2]
        elif name == "emergency":
            if value not in ("true", "false"):
                raise _bad(name, "true or false")
            found["emergency"] = value == "true"
        elif name == "_count":
            count = whole_number(value)
            if count is None or not 0 < count <= _MAX_COUNT:
                raise _bad(name, f"a number from 1 to {_MAX_COUNT}, not {value!r}")
            found["count"] = count
        elif name == "_cursor":
            before = whole_number(value)
            if before is None:
                raise _bad(name, f"{value!r} is not a cursor this server gave")
            found["before"] = before
        else:
            raise _bad(name, "not supported for AuditEvent")
    return AuditQuery(**found)  # type: ignore[arg-type]


def find(reader: Querier, query: AuditQuery) -> tuple[list[tuple[int, bytes]], int | None]:
    """One page of (index, entry), newest first, and the cursor of the next."""
    where: list[str] = []
    params: list[object] = []
    if query.patient is not None:
        where.append("idx IN (SELECT idx FROM audit_patient WHERE patient_id = ?)")
        params.append(query.patient)
    for column, value in (
        ("org_ods", query.org_ods),
        ("client_id", query.client_id),
        ("purpose", query.purpose),
        ("subtype", query.subtype),
        ("outcome", query.outcome),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.emergency is not None:
        where.append("emergency = ?")
        params.append(query.emergency)
    if query.since is not None:
        where.append("recorded >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("recorded < ?")
        params.append(query.until)
    if query.before is not None:
        where.append("idx < ?")
        params.append(query.before)
    sql = "SELECT idx, entry FROM audit_entry"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY idx DESC LIMIT ?"
    rows = reader.select(sql, [*params, query.count + 1])
    page = [(int(str(i)), bytes(e)) for i, e in rows[: query.count]]  # type: ignore[call-overload]
    more = len(rows) > query.count
    return page, (page[-1][0] if more and page else None)
