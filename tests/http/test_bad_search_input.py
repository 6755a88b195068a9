"""Bad search and request input is refused with a 4xx OperationOutcome that
names what is wrong: never a 500, on SQLite and PostgreSQL alike.

Numbers that are not finite, integers past the 64 bits the databases hold,
dates past the years they hold, unknown sort keys, forged page cursors,
control characters, searches too large to run, and URLs or headers longer
than the gateway takes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from starlette.testclient import TestClient

from gateway.auth.tokens import Purpose
from gateway.interactions import write
from gateway.search.query import MAX_COUNT, MAX_PARAMETERS, MAX_TERMS, MAX_VALUES
from gateway.store import Store
from tests.conftest import TEST_ORG, access_token, make_client
from tests.http.test_consent import AUDITOR, World
from tests.support.acting import as_source

BIGINT_MAX = "9223372036854775807"
PAST_BIGINT = "9223372036854775808"
HUGE = "99999999999999999999"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def refused(response: Any, status: int, *named: str) -> dict[str, Any]:
    """The answer's first issue, once the answer is known to be ``status``
    with an OperationOutcome whose diagnostics say each of ``named``."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = body["issue"][0]
    assert issue["severity"] == "error"
    for text in named:
        assert text in issue["diagnostics"], (text, issue["diagnostics"])
    return issue


def _put(client: TestClient, resource: dict[str, Any]) -> None:
    """``resource`` at its id, as the test client's organisation's own record."""
    store = client.app.state.store  # type: ignore[attr-defined]
    write.update(store, as_source(TEST_ORG), resource["resourceType"], resource["id"], resource)


@pytest.fixture
def pulse(client: TestClient) -> TestClient:
    """A patient and an observation with a quantity."""
    _put(client, {"resourceType": "Patient", "id": "ada", "birthDate": "1941-03-02"})
    _put(
        client,
        {
            "resourceType": "Observation",
            "id": "pulse",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/ada"},
            "valueQuantity": {
                "value": 72,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        },
    )
    return client


def _ids(client: TestClient, url: str) -> list[str]:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return sorted(e["resource"]["id"] for e in answer.json().get("entry", []))


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


# -- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name", "value"),
    [
        ("value-quantity=NaN", "value-quantity", "NaN"),
        ("value-quantity=inf", "value-quantity", "inf"),
        ("value-quantity=-Infinity", "value-quantity", "-Infinity"),
        ("value-quantity=sNaN", "value-quantity", "sNaN"),
        ("value-quantity=gt-Infinity", "value-quantity", "-Infinity"),
        ("value-quantity=gtNaN", "value-quantity", "gtNaN"),
        ("value-quantity=NaN|http://unitsofmeasure.org|/min", "value-quantity", "NaN"),
        ("component-value-quantity=Infinity", "component-value-quantity", "Infinity"),
        ("code-value-quantity=http://loinc.org|8867-4$NaN", "code-value-quantity", "NaN"),
    ],
)
def test_a_number_that_is_not_finite_is_400(
    pulse: TestClient, query: str, name: str, value: str
) -> None:
    issue = refused(
        pulse.get(f"/fhir/Observation?{query}"), 400, f"'{name}'", f"'{value}' is not a"
    )
    assert issue["expression"] == [name]
    # In a compartment search, and in a search sent as a form, alike.
    refused(pulse.get(f"/fhir/Patient/ada/Observation?{query}"), 400, f"'{value}'")
    refused(
        pulse.post("/fhir/Observation/_search", content=query.encode(), headers=FORM),
        400,
        f"'{value}'",
    )


def test_finite_numbers_still_search(pulse: TestClient) -> None:
    assert _ids(pulse, "/fhir/Observation?value-quantity=72") == ["pulse"]
    assert _ids(pulse, "/fhir/Observation?value-quantity=gt-1e3") == ["pulse"]
    assert _ids(pulse, "/fhir/Observation?value-quantity=lt1e400") == ["pulse"]
    assert _ids(pulse, "/fhir/Observation?value-quantity=gt1e400") == []
    refused(
        pulse.get("/fhir/Observation?value-quantity=1e999999999"),
        400,
        "'1e999999999' is out of range",
    )
    refused(pulse.get("/fhir/Observation?value-quantity=7x"), 400, "'7x' is not a decimal")


# -- integers past 64 bits -------------------------------------------------------------


def test_a_version_no_version_can_have_is_not_known(pulse: TestClient) -> None:
    """A version id is a FHIR id: one past any the databases hold names no
    version, as any other unknown one (404, the id named), before anything
    is read."""
    for version in (PAST_BIGINT, HUGE + HUGE, "²", "-1", "1.0"):
        refused(
            pulse.get(f"/fhir/Patient/ada/_history/{version}"),
            404,
            f"Patient/ada has no version '{version}'",
        )
    refused(pulse.get(f"/fhir/Patient/ada/_history/{BIGINT_MAX}"), 404, "has no version")
    refused(pulse.get(f"/fhir/Patient/x/_history/{PAST_BIGINT}"), 404, "has no version")
    assert pulse.get("/fhir/Patient/ada/_history/1").status_code == 200


def test_a_huge_version_of_a_hidden_record_answers_as_one_of_a_missing_record(
    world: World,
) -> None:
    def answer(res_id: str) -> tuple[int, str]:
        got = world.get("hospital", f"/fhir/Condition/{res_id}/_history/{PAST_BIGINT}")
        return got.status_code, got.json()["issue"][0]["diagnostics"].replace(res_id, "X")

    assert world.get("hospital", f"/fhir/Condition/{world.asthma}").status_code == 404
    assert answer(world.asthma) == answer("never-was")
    assert answer(world.asthma)[0] == 404


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?_count={}",
        "/fhir/Patient/ada/Observation?_count={}",
        "/fhir?_type=Patient&_count={}",
        "/fhir/Patient/_history?_count={}",
        "/fhir/_history?_count={}",
    ],
)
def test_a_count_past_64_bits_is_400(pulse: TestClient, url: str) -> None:
    refused(pulse.get(url.format(HUGE)), 400, "'_count'", f"'{HUGE}' is out of range")
    refused(pulse.get(url.format("%C2%B2")), 400, "'_count'", "'²'")  # "²".isdigit()
    refused(pulse.get(url.format("-1")), 400, "'_count'", "'-1'")
    assert pulse.get(url.format(BIGINT_MAX)).status_code == 200  # a page holds at most 1000


def test_a_count_over_the_ceiling_is_the_ceiling_and_the_self_link_says_so(
    pulse: TestClient,
) -> None:
    for url in ("/fhir/Patient?_count={}", "/fhir/Patient/ada/Observation?_count={}"):
        answer = pulse.get(url.format(BIGINT_MAX))
        assert answer.status_code == 200
        (link,) = [link["url"] for link in answer.json()["link"] if link["relation"] == "self"]
        assert f"_count={MAX_COUNT}" in link and BIGINT_MAX not in link


@pytest.mark.parametrize(
    "url", ["/fhir/Patient/_history", "/fhir/_history", "/fhir/Patient/ada/_history"]
)
def test_a_history_cursor_past_64_bits_is_400(pulse: TestClient, url: str) -> None:
    for cursor in (f"b{HUGE}", f"a{PAST_BIGINT}", "b%C2%B2", "c1", "b"):
        shown = cursor.replace("%C2%B2", "²")
        refused(pulse.get(f"{url}?_cursor={cursor}"), 400, "'_cursor'", f"'{shown}'")
    assert pulse.get(f"{url}?_cursor=b{BIGINT_MAX}").status_code == 200


def test_an_if_match_version_past_64_bits_is_400(pulse: TestClient) -> None:
    patient = {"resourceType": "Patient", "id": "ada"}
    for etag in (f'W/"{HUGE}"', f'W/"{"9" * 5000}"', 'W/"²"'):
        refused(
            pulse.put("/fhir/Patient/ada", json=patient, headers={"If-Match": etag.encode()}),
            400,
            "If-Match",
            "is not a version ETag",
        )


@pytest.fixture
def auditor(store: Store) -> Iterator[TestClient]:
    token = access_token(
        store,
        client_id="auditor",
        kind="auditor",
        org=AUDITOR,
        scopes="system/Patient.rs system/AuditEvent.rs",
        purpose=Purpose.HCOMPL,
    )
    with make_client(store, token=token) as client:
        yield client


def test_the_audit_log_takes_no_number_past_64_bits(auditor: TestClient) -> None:
    refused(auditor.get(f"/fhir/AuditEvent/{HUGE}"), 404, f"AuditEvent/{HUGE} is not known")
    refused(auditor.get(f"/fhir/AuditEvent/{PAST_BIGINT}"), 404, "is not known")
    refused(auditor.get(f"/audit/entries/{HUGE}"), 404, f"the audit log has no entry {HUGE}")
    refused(auditor.get(f"/fhir/AuditEvent?_cursor={HUGE}"), 400, f"'{HUGE}' is not a cursor")
    refused(auditor.get("/fhir/AuditEvent?_cursor=%C2%B2"), 400, "'²' is not a cursor")
    refused(auditor.get("/fhir/AuditEvent?_count=%C2%B2"), 400, "from 1 to 500, not '²'")
    refused(
        auditor.get("/fhir/AuditEvent?date=ge0001-01-01T00:00:00%2B01:00"),
        400,
        "'0001-01-01T00:00:00+01:00' is outside the instants",
    )
    refused(
        auditor.get(f"/audit/proof/inclusion?index={HUGE}&size=1"),
        400,
        f"'index' must be given as a whole number from 0 to {BIGINT_MAX}, not '{HUGE}'",
    )
    refused(auditor.get("/audit/proof/consistency?old=0&new=%C2%B2"), 400, "'new'", "'²'")
    assert auditor.get(f"/fhir/AuditEvent?_cursor={BIGINT_MAX}").status_code == 200


# -- sorting and including ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "named"),
    [
        ("-foo", "'foo' is not a search parameter of Observation"),
        ("foo", "'foo' is not a search parameter of Observation"),
        ("date,-shoe-size", "'shoe-size' is not a search parameter of Observation"),
        ("", "'' has an empty sort key"),
        ("-", "'-' has an empty sort key"),
        ("date,", "'date,' has an empty sort key"),
    ],
)
def test_a_bad_sort_names_the_bad_value(pulse: TestClient, sort: str, named: str) -> None:
    issue = refused(pulse.get(f"/fhir/Observation?_sort={sort}"), 400, "'_sort'", named)
    assert issue["expression"] == ["_sort"]


def test_a_bad_include_or_has_names_the_parameter_it_does_not_know(pulse: TestClient) -> None:
    refused(
        pulse.get("/fhir/Patient?_include=Patient:bar"),
        400,
        "'bar' is not a search parameter of Patient",
    )
    refused(
        pulse.get("/fhir/Patient?_include=Foo:bar"),
        400,
        "_include names Foo, but the search is for Patient",
    )
    refused(
        pulse.get("/fhir/Patient?_revinclude=Foo:bar"),
        400,
        "'Foo' is not a resource type this server holds",
    )
    refused(
        pulse.get("/fhir/Patient?_has:Observation:bogus:code=1"),
        400,
        "'bogus' is not a search parameter of Observation",
    )
    refused(pulse.get("/fhir/Patient?shoe-size=9"), 400, "unknown search parameter 'shoe-size'")


# -- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("birthdate=2026-13-45", "'2026-13-45' is not a valid date value"),
        ("birthdate=ge99999-01-01", "'ge99999-01-01' is not a valid date value"),
        ("birthdate=2020-01-01T10:00:00%2B99:00", "is not a valid date value"),
        ("_lastUpdated=garbage", "'garbage' is not a valid date value"),
        ("birthdate=ap0001-01-01", "'ap0001-01-01': ap widens this date past the years"),
        ("birthdate=ap9999-12", "'ap9999-12': ap widens this date past the years"),
    ],
)
def test_a_bad_date_is_400(pulse: TestClient, query: str, named: str) -> None:
    refused(pulse.get(f"/fhir/Patient?{query}"), 400, named)


def test_dates_at_the_ends_of_the_calendar_search_as_they_are_indexed(
    pulse: TestClient,
) -> None:
    """A range past 9999-12-31 (or in UTC before year 1) ends there, as the
    values indexed from resources do: the last day is found by its date."""
    _put(pulse, {"resourceType": "Patient", "id": "last", "birthDate": "9999-12-31"})
    assert _ids(pulse, "/fhir/Patient?birthdate=9999-12-31") == ["last"]
    assert _ids(pulse, "/fhir/Patient?birthdate=9999") == ["last"]
    assert _ids(pulse, "/fhir/Patient?birthdate=sa9999-12-30") == ["last"]
    assert _ids(pulse, "/fhir/Patient?birthdate=9999-12-31T23:59:59Z") == []  # not the day
    assert _ids(pulse, "/fhir/Patient?birthdate=le9999-12-31T23:59:59Z") == ["ada", "last"]
    assert _ids(pulse, "/fhir/Patient?birthdate=le0001-01-01T00:00:00%2B14:00") == []
    assert _ids(pulse, "/fhir/Patient?_lastUpdated=9999-12-31") == []
    assert _ids(pulse, "/fhir?_type=Patient&_lastUpdated=le9999-12-31") == ["ada", "last"]


def test_a_since_outside_the_years_held_is_400(pulse: TestClient) -> None:
    for since in ("0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"):
        shown = since.replace("%2B", "+")
        refused(
            pulse.get(f"/fhir/Patient/_history?_since={since}"),
            400,
            f"'{shown}' is outside the instants this server handles",
        )
    refused(pulse.get("/fhir/_history?_since=garbage"), 400, "'garbage' is not a FHIR instant")


# -- the size of a search ------------------------------------------------------------


def test_a_search_too_large_to_run_is_400(pulse: TestClient) -> None:
    many = ",".join(f"id{i}" for i in range(MAX_VALUES + 1))
    refused(
        pulse.get(f"/fhir/Patient?_id={many}"),
        400,
        f"'_id': has {MAX_VALUES + 1} comma-separated values; at most {MAX_VALUES}",
    )
    # 5,000 ids: too long for a URL, so sent as a form; refused as as many values.
    thousands = ",".join(f"id{i}" for i in range(5_000))
    refused(
        pulse.post("/fhir/Patient/_search", content=f"_id={thousands}".encode(), headers=FORM),
        400,
        "has 5000 comma-separated values",
    )
    repeated = urlencode([("_id", f"id{i}") for i in range(MAX_PARAMETERS + 1)])
    refused(
        pulse.get(f"/fhir/Patient?{repeated}"),
        400,
        f"the search has {MAX_PARAMETERS + 1} parameters; at most {MAX_PARAMETERS}",
    )
    spread = urlencode([("name", ",".join(f"n{j}" for j in range(MAX_VALUES)))] * 3)
    refused(
        pulse.post("/fhir/Patient/_search", content=spread.encode(), headers=FORM),
        400,
        f"the search has {3 * MAX_VALUES} values in all",
        f"at most {MAX_TERMS}",
    )


def test_the_largest_search_allowed_runs(pulse: TestClient) -> None:
    """At the limits, of the costliest kinds, the search is answered."""
    ids = ",".join(["ada", *(f"id{i}" for i in range(MAX_VALUES - 1))])
    assert _ids(pulse, f"/fhir/Patient?_id={ids}") == ["ada"]
    kinds = [
        ("birthdate", "ge{}"),
        ("name", "n{}"),
        ("identifier", "s|{}"),
        ("_has:Observation:subject:code", "http://loinc.org|{}"),
        ("general-practitioner:Practitioner.name", "n{}"),
    ]
    per = MAX_TERMS // MAX_PARAMETERS
    params = [
        (name, ",".join(shape.format(1900 + i * 50 + j) for j in range(per)))
        for i, (name, shape) in enumerate(kinds * (MAX_PARAMETERS // len(kinds)))
    ]
    answer = pulse.post("/fhir/Patient/_search", content=urlencode(params).encode(), headers=FORM)
    assert answer.status_code == 200, answer.text


def test_chains_and_has_nested_deep_are_answered(pulse: TestClient) -> None:
    chain = "/fhir/Patient?" + "link:Patient." * 100 + "name=x"
    assert _ids(pulse, chain) == []
    has = "/fhir/Patient?" + "_has:Observation:has-member:" * 100 + "code=x"
    assert _ids(pulse, has) == []


# -- forged page cursors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "position"),
    [
        ("/fhir/Patient?_sort=birthdate", {"f": True, "k": [2**64 - 1], "i": "x"}),
        ("/fhir/Patient?_sort=birthdate", {"f": True, "k": [2**63], "i": "x"}),
        ("/fhir/Patient?_sort=birthdate", {"f": True, "k": [1.5], "i": "x"}),
        ("/fhir/Patient?_sort=birthdate", {"f": True, "k": [True], "i": "x"}),
        ("/fhir/Patient?_sort=birthdate", {"f": True, "k": ["\x00"], "i": "x"}),
        ("/fhir/Patient", {"f": True, "k": [], "i": "a\x00"}),
        ("/fhir/Patient", {"f": True, "k": [], "i": 2**64 - 1}),
        ("/fhir/Observation?_sort=value-quantity", {"f": True, "k": ["72"], "i": "x"}),
        ("/fhir?_type=Patient,Observation", {"f": True, "k": [3], "i": "x"}),
    ],
)
def test_a_forged_search_cursor_is_400(
    pulse: TestClient, url: str, position: dict[str, Any]
) -> None:
    joiner = "&" if "?" in url else "?"
    refused(pulse.get(f"{url}{joiner}_cursor={_cursor(position)}"), 400, "cursor")


def test_a_cursor_the_search_issued_still_pages(pulse: TestClient) -> None:
    _put(pulse, {"resourceType": "Patient", "id": "zoe", "birthDate": "1987-11-30"})
    first = pulse.get("/fhir/Patient?_sort=birthdate&_count=1").json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = pulse.get(following.removeprefix("http://testserver"))
    assert [e["resource"]["id"] for e in second.json()["entry"]] == ["zoe"]


# -- control characters ----------------------------------------------------------------


def test_a_control_character_in_a_search_is_400(pulse: TestClient) -> None:
    refused(pulse.get("/fhir/Patient?name=a%01b"), 400, "'name'", "U+0001")
    refused(
        pulse.post("/fhir/Patient/_search", content=b"name=a%00b", headers=FORM),
        400,
        "'name'",
        "U+0000",
    )
    # A NUL anywhere in the URL is refused before routing: no FHIR value holds one.
    for url in (
        "/fhir/Patient?_id=%00",
        "/fhir/Patient?identifier=x%00|y",
        "/fhir/Patient/_history?_since=%00",
        "/fhir/Patient/%00",
    ):
        refused(pulse.get(url), 400, "NUL")


def test_a_nul_in_an_audit_search_is_400(auditor: TestClient) -> None:
    refused(auditor.get("/fhir/AuditEvent?patient=%00"), 400, "NUL")


def test_a_nul_in_a_resource_is_400(pulse: TestClient) -> None:
    issue = refused(
        pulse.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "a\0"}]}),
        400,
        "U+0000",
    )
    assert issue["expression"] == ["Patient.name[0].family"]


# -- URLs and headers ------------------------------------------------------------------


def test_a_url_over_the_limit_is_414(pulse: TestClient) -> None:
    long_name = "a" * 9000
    issue = refused(
        pulse.get(f"/fhir/Patient?name={long_name}"),
        414,
        "the URL is 9019 bytes long; this server takes at most 8192",
        "POST [type]/_search",
    )
    assert issue["code"] == "too-long"
    # The same search as a form is answered.
    sent = pulse.post("/fhir/Patient/_search", content=f"name={long_name}".encode(), headers=FORM)
    assert sent.status_code == 200


def test_the_limits_are_settings(store: Store) -> None:
    with make_client(store, max_url_bytes=100, max_header_bytes=2048) as client:
        refused(client.get("/fhir/Patient?name=" + "a" * 100), 414, "at most 100")
        refused(
            client.get("/fhir/metadata", headers={"X-Padding": "a" * 2048}),
            431,
            "this server takes at most 2048",
        )
        assert client.get("/fhir/Patient?name=a").status_code == 200


def test_headers_over_the_limit_are_431(pulse: TestClient) -> None:
    answer = pulse.get("/fhir/Patient", headers={"X-Padding": "a" * (64 * 1024)})
    issue = refused(answer, 431, "the request's headers are", "this server takes at most 65536")
    assert issue["code"] == "too-long"
    assert answer.headers["x-request-id"]


# -- the auditors' console ----------------------------------------------------------


def test_the_console_takes_no_number_past_64_bits(world: World) -> None:
    from tests.http.test_console import _csrf, _signed_in

    world.get("ambulance", f"/fhir/Patient/{world.patient}")  # an emergency access to review
    _signed_in(world)
    for cursor in (HUGE, "%C2%B2", BIGINT_MAX):
        assert world.api.get(f"/console?cursor={cursor}").status_code == 200
    page = world.api.get("/console/reviews").text
    answer = world.api.post(f"/console/reviews/{HUGE}", data={"note": "x", "csrf": _csrf(page)})
    assert answer.status_code == 400
    assert f"entry {HUGE} is not waiting for review" in answer.text
