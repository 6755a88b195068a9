"""The console's pages. Each handler checks the session (and, for forms, the
CSRF token), marks the request for the audit log like any API request, and
renders a template from what the audit modules answer."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from consent.model import Requester
from gateway import fhirjson
from gateway.audit import log, report, reviews
from gateway.audit.events import Disclosures
from gateway.audit.query import AuditQuery, find
from gateway.audit.report import summarise
from gateway.console import sessions
from gateway.console.sessions import NotAllowed, Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.integers import MAX_BIGINT, whole_number
from gateway.store import Store, as_bytes

COOKIE = "gw_console"
_TEMPLATES = Environment(
    loader=PackageLoader("gateway.console", "templates"), autoescape=select_autoescape()
)
PURPOSE_COLOURS = {"TREAT": "#005eb8", "ETREAT": "#b3261e", "HCOMPL": "#7c8a99"}
SUBTYPES = ["read", "vread", "search-type", "search-system", "history-instance", "create",
            "update", "delete", "batch", "operation", "token", "review"]  # fmt: skip
_CHART_DAYS = 14
_CHART_ENTRIES = 5000  # the most recent entries the charts are drawn from


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(name).render(**values)
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
        },
    )


def _refused(message: str, status: int = 403) -> HTMLResponse:
    return _page("message.html", status, title="Not allowed", message=message, session=None)


def _signed_in(request: Request) -> tuple[Session, bytes]:
    store: Store = request.app.state.store
    key = request.app.state.console_key
    session = sessions.open_cookie(store, key, request.cookies.get(COOKIE))
    # Recorded in the audit log like any API request (see gateway.http.middleware).
    request.scope.setdefault("state", {})["audit"] = (
        Requester(
            client_id=session.client_id,
            client_name=session.client_name,
            org_ods=session.org_ods,
            org_name=session.org_name,
            kind="auditor",
            purpose="HCOMPL",
        ),
        Disclosures(),
    )
    return session, key


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > 16_384:
        raise NotAllowed("the form is too large")
    return dict(parse_qsl(body.decode("utf-8", errors="replace")))


async def login(request: Request) -> Response:
    """``/console/login?token=...``: spend a one-time link, open a session."""
    store: Store = request.app.state.store
    try:
        session = await run_in_threadpool(
            sessions.redeem, store, request.query_params.get("token", "")
        )
    except NotAllowed as exc:
        return _refused(str(exc))
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        COOKIE,
        sessions.cookie_value(request.app.state.console_key, session),
        max_age=sessions.SESSION_LIFETIME_S,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    try:
        session, key = _signed_in(request)
        sessions.check_csrf(key, session, (await _form(request)).get("csrf"))
    except NotAllowed as exc:
        return _refused(str(exc))
    response = RedirectResponse("/console/signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


async def signed_out(request: Request) -> Response:
    return _page("message.html", title="Signed out", message="You have signed out.", session=None)


def _filters(request: Request) -> tuple[AuditQuery, dict[str, str]]:
    given = {k: v.strip() for k, v in request.query_params.items() if v.strip()}

    def day(name: str) -> str | None:
        if name not in given:
            return None
        try:
            return date.fromisoformat(given[name]).isoformat()
        except ValueError:
            raise InvalidRequest(f"{name}: not a date", code="GW-0930") from None

    since, until = day("from"), day("to")
    cursor = given.get("cursor")
    query = AuditQuery(
        patient=given.get("patient"),
        org_ods=given["organisation"].upper() if "organisation" in given else None,
        purpose=given.get("purpose"),
        subtype=given.get("subtype"),
        outcome=given.get("outcome"),
        emergency=True if given.get("emergency") == "true" else None,
        since=f"{since}T00:00:00.000000Z" if since else None,
        until=(
            f"{(date.fromisoformat(until) + timedelta(days=1)).isoformat()}T00:00:00.000000Z"
            if until
            else None
        ),
        before=whole_number(cursor) if cursor else None,  # a cursor not ours: the first page
    )
    return query, given


def _bars(days: list[str], series: dict[str, list[int]], colours: dict[str, str]) -> str:
    """A stacked bar chart as inline SVG (no script, no build step)."""
    width, height, pad = 520, 170, 24
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = max([*totals, 1])
    step = (width - pad) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y: float = height - pad
        for name, values in series.items():
            h = (height - 2 * pad) * values[i] / top
            if h:
                bars.append(
                    f'<rect x="{pad + i * step + 2:.1f}" y="{y - h:.1f}" width="{step - 4:.1f}" '
                    f'height="{h:.1f}" fill="{colours.get(name, "#999")}">'
                    f"<title>{day} {name}: {values[i]}</title></rect>"
                )
                y -= h
        if i % 2 == 0:
            bars.append(
                f'<text x="{pad + i * step + step / 2:.1f}" y="{height - 6}" font-size="9" '
                f'text-anchor="middle" fill="#5b6b7b">{day[5:]}</text>'
            )
    bars.append(f'<text x="0" y="{pad}" font-size="10" fill="#5b6b7b">{top}</text>')
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="bar chart">{"".join(bars)}</svg>'
    )


def _charts(store: Store) -> tuple[str, str]:
    rows = store.select(
        "SELECT entry FROM audit_entry WHERE subtype <> 'token' ORDER BY idx DESC LIMIT ?",
        [_CHART_ENTRIES],
    )
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(_CHART_DAYS - 1, -1, -1)]
    by_purpose: dict[str, Counter[str]] = defaultdict(Counter)
    withheld: Counter[str] = Counter()
    for (entry,) in rows:
        flat = summarise(fhirjson.loads(as_bytes(entry)))
        day = flat["when"][:10]
        by_purpose[flat["purpose"] or "HCOMPL"][day] += 1
        withheld[day] += flat["withheld"]
    purpose_chart = _bars(
        days,
        {p: [by_purpose[p][d] for d in days] for p in PURPOSE_COLOURS},
        PURPOSE_COLOURS,
    )
    withheld_chart = _bars(days, {"withheld": [withheld[d] for d in days]}, {"withheld": "#c77700"})
    return purpose_chart, withheld_chart


async def timeline(request: Request) -> Response:
    try:
        session, _ = _signed_in(request)
    except NotAllowed as exc:
        return _refused(str(exc))
    query, given = _filters(request)
    store: Store = request.app.state.store

    def gather() -> tuple[list[dict[str, Any]], int | None, tuple[str, str]]:
        page, cursor = find(store, query)
        rows = []
        flats = report.named(store, [summarise(fhirjson.loads(entry)) for _, entry in page])
        for (index, _), flat in zip(page, flats, strict=True):
            rows.append(
                {
                    "index": index,
                    "org": flat["organization"],
                    "org_name": flat["organizationName"],
                    **flat,
                }
            )
        return rows, cursor, _charts(store)

    rows, cursor, (chart_purpose, chart_withheld) = await run_in_threadpool(gather)
    kept = {k: v for k, v in given.items() if k != "cursor"}
    return _page(
        "timeline.html",
        title="Timeline",
        page="timeline",
        session=session,
        filters=given,
        subtypes=SUBTYPES,
        rows=rows,
        next_url=f"/console?{urlencode({**kept, 'cursor': cursor})}"
        if cursor is not None
        else None,
        colours=PURPOSE_COLOURS,
        chart_purpose=chart_purpose,
        chart_withheld=chart_withheld,
    )


async def review_page(request: Request) -> Response:
    try:
        session, key = _signed_in(request)
    except NotAllowed as exc:
        return _refused(str(exc))
    store: Store = request.app.state.store
    waiting = await run_in_threadpool(reviews.pending, store)
    flats = await run_in_threadpool(report.named, store, [summarise(i.event) for i in waiting])
    items = []
    for item, flat in zip(waiting, flats, strict=True):
        items.append(
            {
                "index": item.index,
                "when": flat["when"],
                "org": flat["organization"],
                "org_name": flat["organizationName"],
                "client": flat["client"],
                "patients": list(item.patients),
                "reason": flat["breakGlassReason"],
                "why": item.why,
            }
        )
    return _page(
        "reviews.html",
        title="Reviews",
        page="reviews",
        session=session,
        pending=items,
        csrf=sessions.csrf_token(key, session),
        done=request.query_params.get("done"),
    )


async def mark_reviewed(request: Request) -> Response:
    try:
        session, key = _signed_in(request)
        form = await _form(request)
        sessions.check_csrf(key, session, form.get("csrf"))
    except NotAllowed as exc:
        return _refused(str(exc))
    index: int = request.path_params["index"]  # {index:int}: digits, however many
    if index > MAX_BIGINT:
        return _refused(f"entry {index} is not waiting for review", 400)
    asker, _ = request.scope["state"]["audit"]
    try:
        await run_in_threadpool(
            reviews.review,
            request.app.state.store,
            index,
            asker,
            form.get("note", ""),
            request.scope["state"].get("request_id", ""),
        )
    except (InvalidRequest, NotFound, Conflict) as exc:
        return _refused(exc.message, 400)
    return RedirectResponse(f"/console/reviews?done={index}", status_code=303)


async def person(request: Request) -> Response:
    try:
        session, _ = _signed_in(request)
    except NotAllowed as exc:
        return _refused(str(exc))
    patient_id = request.path_params["patient_id"]
    request.scope["state"]["audit"][1].patients.add(patient_id)
    found = await run_in_threadpool(report.accesses, request.app.state.store, patient_id)
    return _page(
        "person.html",
        title="Access report",
        page="person",
        session=session,
        patient_id=patient_id,
        organisations=report.by_organisation(found),
        accesses=found,
    )


async def verify_page(request: Request) -> Response:
    try:
        session, key = _signed_in(request)
        if request.method == "POST":
            sessions.check_csrf(key, session, (await _form(request)).get("csrf"))
    except NotAllowed as exc:
        return _refused(str(exc))
    store: Store = request.app.state.store
    vkey = request.app.state.audit_signer.verifier_key()
    if request.method == "POST":
        request.app.state.console_verification = await run_in_threadpool(log.verify, store, vkey)
    signed = await run_in_threadpool(log.checkpoints, store)
    checkpoint = None
    if signed:
        size, root, _ = signed[-1]
        checkpoint = {"size": size, "root": root.hex()}
    return _page(
        "verify.html",
        title="Log verification",
        page="verify",
        session=session,
        csrf=sessions.csrf_token(key, session),
        vkey=vkey,
        checkpoint=checkpoint,
        result=getattr(request.app.state, "console_verification", None),
    )


ROUTES: list[BaseRoute] = [
    Route("/console/login", login, methods=["GET"]),
    Route("/console/logout", logout, methods=["POST"]),
    Route("/console/signed-out", signed_out, methods=["GET"]),
    Route("/console", timeline, methods=["GET"]),
    Route("/console/reviews", review_page, methods=["GET"]),
    Route("/console/reviews/{index:int}", mark_reviewed, methods=["POST"]),
    Route("/console/people/{patient_id}", person, methods=["GET"]),
    Route("/console/verify", verify_page, methods=["GET", "POST"]),
]
