"""The auditors' console over HTTP: one-time login links, the session
cookie, CSRF on every form, the pages, and that using it is audited."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.console import sessions
from gateway.console.sessions import NotAllowed
from gateway.loading import load
from tests.conftest import access_token
from tests.http.test_consent import AUDITOR, World


def _auditor_link(world: World) -> str:
    access_token(
        world.store, client_id="auditor", kind="auditor", org=AUDITOR, scopes="system/Patient.rs"
    )
    return f"/console/login?token={sessions.mint_login_link(world.store, 'auditor')}"


def _signed_in(world: World) -> None:
    answer = world.api.get(_auditor_link(world), follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_links_are_for_auditors_and_work_once(world: World) -> None:
    with pytest.raises(NotAllowed):
        sessions.mint_login_link(world.store, "gp")  # a GP system is no auditor
    link = _auditor_link(world)
    assert world.api.get(link, follow_redirects=False).status_code == 303
    world.api.cookies.clear()
    assert world.api.get(link).status_code == 403  # spent
    assert world.api.get("/console").status_code == 403  # no session, no page
    world.api.cookies.set("gw_console", "forged.value", path="/console")
    assert world.api.get("/console").status_code == 403


def test_the_timeline_filters_and_the_person_report(world: World) -> None:
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    world.get("hospital", f"/fhir/Condition/{world.asthma}")
    _signed_in(world)
    page = world.api.get("/console")
    assert page.status_code == 200 and "Accesses per day" in page.text
    assert "<svg" in page.text and "RRU" in page.text and "RKE" in page.text
    emergency = world.api.get("/console?purpose=ETREAT").text
    table = emergency.split('id="accesses"')[1]
    assert "RRU" in table and "RKE" not in table
    report = world.api.get(f"/console/people/{world.patient}").text
    assert "999 call from the care home" in report and "no-relationship" in report


def test_forms_need_the_csrf_token_and_reviews_are_logged(world: World) -> None:
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    _signed_in(world)
    page = world.api.get("/console/reviews").text
    index = re.search(r'action="/console/reviews/(\d+)"', page)
    assert index
    url = f"/console/reviews/{index.group(1)}"
    forged = world.api.post(url, data={"note": "looks fine", "csrf": "guess"})
    assert forged.status_code == 403
    assert world.api.post(url, data={"note": "looks fine"}).status_code == 403
    done = world.api.post(url, data={"note": "call confirmed", "csrf": _csrf(page)})
    assert done.status_code == 200 and "marked reviewed" in done.text
    assert "Nothing waits for review" in world.api.get("/console/reviews").text
    reviewed = world.store.select(
        "SELECT COUNT(*) FROM audit_entry WHERE subtype = 'review' AND client_id = 'auditor'", []
    )
    assert reviewed[0][0] == 1
    console_pages = world.store.select(
        "SELECT COUNT(*) FROM audit_entry WHERE client_id = 'auditor' AND purpose = 'HCOMPL'", []
    )
    assert int(str(console_pages[0][0])) >= 4  # every page seen is in the log too


def test_verification_from_the_console(world: World) -> None:
    _signed_in(world)
    page = world.api.get("/console/verify").text
    result = world.api.post("/console/verify", data={"csrf": _csrf(page)})
    assert result.status_code == 200 and "Intact" in result.text


def test_the_console_names_organisations_from_the_directory(world: World, tmp_path: Path) -> None:
    """The timeline, the review queue and a person's report name each
    organisation as the directory does, with its code beside it."""
    directory = tmp_path / "organisations.csv"
    directory.write_text(
        "ods_code,name,kind,address\nRRU,London Ambulance (directory),ambulance,\n",
        encoding="utf-8",
    )
    assert load(world.store, "organisations", "X9P01", [directory]).loaded == 1
    world.get("ambulance", f"/fhir/Patient/{world.patient}")
    _signed_in(world)
    for page in ("/console", "/console/reviews", f"/console/people/{world.patient}"):
        text = world.api.get(page).text
        assert "London Ambulance (directory)" in text, page
