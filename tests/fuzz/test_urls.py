"""URLs under generated input. Search URLs: parameters of each type from FHIR's
own SearchParameter definitions (``gateway.search.parameters``), with values
of their kind (tokens, strings, dates, numbers and quantities with their
prefixes, references and chains, composites), modifiers, the result
parameters (``_sort``, ``_count``, ``_include``, ``_cursor``...), and values
that are wrong (control characters, numbers past 64 bits, dates past the
years the databases hold, unknown names, too many values).

The property: a 200 Bundle or a 4xx OperationOutcome, never a 5xx, as a GET,
as a form POSTed to ``_search``, in a compartment and across types; and no
search writes anything.

And every other route's URL: types, ids, versions and operations of every
shape (numbers past 64 bits, percent-escaped NULs and dots, unknown types),
with the parameters those routes read: a success or a 4xx, never a 5xx,
and nothing written by a read or by a refusal.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.search.parameters import SearchParameter, parameters_for
from gateway.store import Store
from tests.conftest import access_token
from tests.fuzz.conftest import digest, examples, fuzz_client
from tests.fuzz.fhir import BIG_NUMBERS, ODD_TEXT, WRITABLE
from tests.fuzz.test_api import FHIR_JSON, answered

R4_EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "r4"
SEARCHED = tuple(t for t in WRITABLE if parameters_for(t))
PREFIXES = ("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx")
MODIFIERS = (
    "",
    "",
    "",
    ":missing",
    ":exact",
    ":contains",
    ":not",
    ":text",
    ":in",
    ":below",
    ":above",
    ":identifier",
    ":of-type",
    ":Patient",
    ":bogus",
)

_WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789-. ", min_size=1, max_size=12)
_DATE = st.sampled_from(
    [
        "2026",
        "2026-03",
        "2026-03-15",
        "2026-03-15T09:30",
        "2026-03-15T09:30:00Z",
        "2026-03-15T09:30:00.123+01:00",
        "1941-13-45",
        "0000-01-01",
        "9999-12-31T23:59:59Z",
        "99999-01-01",
        "-2026",
        "2026-02-29",
        "2026-03-15T25:00",
        "20260315",
    ]
)
_NUMBER = st.one_of(
    st.integers(-1000, 1000).map(str),
    BIG_NUMBERS.map(str),
    st.sampled_from(["1.5", "1e3", "1e400", "NaN", "-Infinity", "0x10", "1_000", "٣", ".", "-"]),
)
_ODD = st.one_of(ODD_TEXT, st.text(max_size=20), st.just("," * 150), st.just("x" * 5000))


@st.composite
def _value(draw: st.DrawFn, param: SearchParameter) -> str:
    kind = param.type
    if kind == "token":
        return draw(
            st.sampled_from(
                [
                    f"http://loinc.org|{draw(_WORD)}",
                    f"|{draw(_WORD)}",
                    "https://fhir.nhs.uk/Id/nhs-number|",
                    draw(_WORD),
                    "a|b|c",
                    "http://example.org|x$y",
                ]
            )
        )
    if kind == "date":
        return draw(st.sampled_from(PREFIXES)) + draw(_DATE)
    if kind in ("number", "quantity"):
        number = draw(st.sampled_from(PREFIXES)) + draw(_NUMBER)
        if kind == "quantity" and draw(st.booleans()):
            return number + draw(st.sampled_from(["|http://unitsofmeasure.org|mg", "||mg", "|"]))
        return number
    if kind == "reference":
        target = draw(st.sampled_from(param.targets or ("Patient",)))
        return draw(
            st.sampled_from(
                [
                    f"{target}/{draw(_WORD)}",
                    draw(_WORD),
                    f"http://testserver/fhir/{target}/1",
                    f"http://elsewhere.example/fhir/{target}/1",
                    f"{target}/1/_history/2",
                    "urn:uuid:5b1f0c1e-8f44-4a43-9a4a-1d1c2b3a4d5e",
                ]
            )
        )
    if kind == "composite":
        return f"{draw(_WORD)}${draw(st.sampled_from(PREFIXES))}{draw(_NUMBER)}"
    if kind == "uri":
        return draw(st.sampled_from(["http://example.org/x", "urn:oid:1.2", "x", ""]))
    return draw(_WORD)


@st.composite
def _condition(draw: st.DrawFn, res_type: str) -> tuple[str, str]:
    params = parameters_for(res_type)
    code = draw(st.sampled_from(sorted(params)))
    param = params[code]
    name = code + draw(st.sampled_from(MODIFIERS))
    if param.type == "reference" and draw(st.integers(0, 4)) == 0:
        # A chain through the reference to a parameter of its target.
        target = draw(st.sampled_from(param.targets or ("Patient",)))
        if parameters_for(target):
            chained = draw(st.sampled_from(sorted(parameters_for(target))))
            return f"{code}:{target}.{chained}", draw(_value(parameters_for(target)[chained]))
    values = draw(st.lists(_value(param), min_size=1, max_size=3))
    return name, ",".join(values)


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@st.composite
def _result(draw: st.DrawFn, res_type: str) -> tuple[str, str]:
    codes = sorted(parameters_for(res_type))
    references = [c for c in codes if parameters_for(res_type)[c].type == "reference"]
    name = draw(
        st.sampled_from(
            [
                *("_sort", "_count", "_include", "_revinclude", "_elements", "_summary", "_total"),
                *("_cursor", "_include:iterate", "_has", "_id", "_lastUpdated", "_type", "_format"),
            ]
        )
    )
    if name == "_sort":
        return name, ",".join(
            draw(st.sampled_from(["", "-"])) + draw(st.sampled_from([*codes, "_lastUpdated", "x"]))
            for _ in range(draw(st.integers(1, 3)))
        )
    if name == "_count":
        return name, draw(_NUMBER)
    if name.startswith("_include"):
        ref = draw(st.sampled_from(references or ["subject"]))
        return name, draw(st.sampled_from([f"{res_type}:{ref}", f"{res_type}:*", ref, "*"]))
    if name == "_revinclude":
        return name, draw(st.sampled_from(["Provenance:target", "Observation:subject", "x:y"]))
    if name == "_has":
        return "_has:Observation:subject:code", draw(_WORD)
    if name == "_cursor":
        return name, draw(
            st.sampled_from(
                [
                    _cursor({"f": True, "k": [], "i": "a"}),
                    _cursor({"f": True, "k": [2**64], "i": "a"}),
                    _cursor({"f": False, "k": ["\x00"], "i": "\x00"}),
                    _cursor([1, 2]),
                    "not-base64!",
                    "",
                ]
            )
        )
    if name == "_lastUpdated":
        return name, draw(st.sampled_from(PREFIXES)) + draw(_DATE)
    return name, draw(st.one_of(_WORD, st.sampled_from(["count", "true", "accurate", "id,name"])))


@st.composite
def searches(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    res_type = draw(st.sampled_from(SEARCHED))
    params = draw(
        st.lists(
            st.one_of(
                _condition(res_type),
                _condition(res_type),
                _result(res_type),
                st.tuples(st.one_of(_WORD, _ODD), _ODD),  # names and values of no kind
            ),
            max_size=5,
        )
    )
    return res_type, params


@pytest.fixture
def searched(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """The API over a store holding R4's example of each type."""
    with fuzz_client(store, export_dir=str(tmp_path / "exports")) as client:
        for path in sorted(R4_EXAMPLES.glob("*.json")):
            client.post(f"/fhir/{path.stem}", content=path.read_bytes(), headers=FHIR_JSON)
        yield client


def test_a_search_is_a_bundle_or_a_4xx_and_writes_nothing(
    searched: TestClient, store: Store
) -> None:
    @examples(300, store)
    @given(searches(), st.sampled_from(["get", "post", "compartment", "system"]))
    def search(case: tuple[str, list[tuple[str, str]]], how: str) -> None:
        res_type, params = case
        query = urlencode(params, errors="surrogatepass")
        before = digest(store)
        if how == "get":
            response = searched.get(f"/fhir/{res_type}?{query}")
        elif how == "post":
            response = searched.post(
                f"/fhir/{res_type}/_search",
                content=query.encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
        elif how == "compartment":
            response = searched.get(f"/fhir/Patient/example/{res_type}?{query}")
        else:
            response = searched.get(f"/fhir?_type={res_type},Patient&{query}")
        body = answered(response, f"search {how} {res_type}?{query}")
        if response.status_code == 200:
            assert body["resourceType"] == "Bundle"
        assert digest(store) == before, "a search wrote"

    search()


_TYPES = st.sampled_from([*WRITABLE, "AuditEvent", "Bogus", "patient", "Patient%00", "Bundle"])
_IDS = st.one_of(
    st.sampled_from(
        [
            "example",
            "A81001-1",
            "9" * 25,
            "-1",
            "a" * 65,
            "%00",
            "%E2%80%AE",
            "..",
            "%2e%2e",
            "%F0%9F%98%80",
            "1e400",
            "%ED%A0%80",
        ]
    ),
    _WORD.map(lambda word: word.replace(" ", "-")),
)
_SUFFIXES = st.sampled_from(
    [
        "",
        "/_history",
        "/_history/1",
        "/_history/99999999999999999999",
        "/_history/9223372036854775808",
        "/_history/-1",
        "/_history/0",
        "/_history/abc",
        "/$everything",
        "/$summary",
        "/$red-bag",
        "/$access-report",
        "/$validate",
        "/$status",
        "/$events",
        "/$export",
        "/Observation",
        "/_search",
    ]
)
_SYSTEM = st.sampled_from(
    [
        "/fhir/_history",
        "/fhir/$export",
        "/fhir/Patient/$export",
        "/fhir/$export-status/x",
        "/fhir/$export-status/" + "9" * 40,
        "/fhir/$export-file/x/y.ndjson",
        "/fhir/$access-check",
        "/fhir/$ingest",
        "/fhir/metadata",
        "/fhir/Patient/$summary",
        "/fhir/Patient/_history",
        "/fhir/AuditEvent",
    ]
)
_QUERY_NAMES = st.sampled_from(
    [
        *("_count", "_since", "_at", "_list", "_type", "_outputFormat", "_elements", "start"),
        *("end", "_typeFilter", "patient", "purpose", "format", "_summary", "_format", "since"),
        *("eventsSinceNumber", "eventsUntilNumber", "content", "identifier", "profile", "mode"),
    ]
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        path = draw(_SYSTEM)
    else:
        path = f"/fhir/{draw(_TYPES)}"
        if draw(st.integers(0, 5)) > 0:
            path += f"/{draw(_IDS)}{draw(_SUFFIXES)}"
    params = draw(
        st.lists(
            st.tuples(_QUERY_NAMES, st.one_of(_NUMBER, _DATE, _WORD, _ODD)),
            max_size=3,
        )
    )
    return f"{path}?{urlencode(params, errors='surrogatepass')}" if params else path


def test_any_url_is_a_success_or_a_4xx_and_a_read_writes_nothing(
    searched: TestClient, store: Store
) -> None:
    @examples(150, store)
    @given(urls(), st.sampled_from(["GET", "GET", "HEAD", "DELETE", "POST", "PATCH"]))
    def request(url: str, method: str) -> None:
        before = digest(store)
        body = b"{}" if method in ("POST", "PATCH") else None
        response = searched.request(method, url, content=body, headers=FHIR_JSON)
        answered(response, f"{method} {url}")
        if method in ("GET", "HEAD") or response.status_code >= 400:
            assert digest(store) == before, f"{method} {url} wrote"

    request()


# $ingest: each format's seeds (tests/fuzz/corpus.py) with bytes changed,
# pushed by an organisation of the kind that keeps that format.
_INGEST = {
    "hl7v2": ("hospital", "R9D", "application/hl7-v2"),
    "cld": ("council", "E09000007", "text/csv"),
    "gpconnect": ("gp-practice", "F99C01", "application/fhir+json"),
    "carehome": ("care-home", "V9C01", "application/json"),
}
_FORMAT = {"hl7v2": "hl7v2", "cld": "cld", "gpconnect": "gp-connect", "carehome": "care-home"}


@st.composite
def _changed(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 8)) :]
    return data


def test_an_ingest_is_a_parameters_or_a_4xx(store: Store, tmp_path: Path) -> None:
    from tests.fuzz.corpus import build
    from tests.fuzz.targets._loading import split_input

    build(tmp_path / "seeds")
    seeds = {
        name: [
            split_input(p.read_bytes(), org) for p in sorted((tmp_path / "seeds" / name).iterdir())
        ]
        for name, (_, org, _) in _INGEST.items()
    }
    clients: dict[tuple[str, str], TestClient] = {}

    def client_of(kind: str, org: str) -> TestClient:
        """A client of the organisation a seed is loaded as."""
        if (kind, org) not in clients:
            token = access_token(store, client_id=f"fuzz-{kind}-{org}", kind=kind, org=org)
            clients[kind, org] = fuzz_client(store, token=token)
        return clients[kind, org]

    @examples(40, store)
    @given(st.sampled_from(sorted(_INGEST)), st.data())
    def ingest(name: str, data: Any) -> None:
        org, seed = data.draw(st.sampled_from(seeds[name]))
        body = data.draw(_changed(seed))
        kind, _, media = _INGEST[name]
        how = data.draw(st.sampled_from(["media", "format", "wrong"]))
        url = "/fhir/$ingest"
        if how == "format":
            url += f"?format={_FORMAT[name]}"
        elif how == "wrong":
            url += f"?format={data.draw(st.sampled_from(sorted(_FORMAT.values())))}"
        with client_of(kind, org) as client:
            response = client.post(url, content=body, headers={"content-type": media})
        answer = answered(response, f"$ingest {name} {how}")
        if response.status_code == 200:
            assert answer["resourceType"] == "Parameters"

    ingest()


_HEADER_NAMES = st.sampled_from(
    [
        *("x-request-id", "accept", "content-type", "prefer", "if-match", "if-none-exist"),
        *("if-none-match", "if-modified-since", "x-forwarded-for", "forwarded", "host"),
        *("authorization", "accept-charset", "content-length", "x-purpose-of-use", "origin"),
    ]
)
# Header values as the wire carries them: bytes, read as Latin-1.
_HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
    st.sampled_from(
        [
            "application/fhir+json;q=abc",
            "*/*;q=2, text/html;q=-1",
            ";;;,,,",
            "application/fhir+json; fhirVersion=9.9",
            "application/fhir+json; charset=\u00e9",
            "Bearer",
            "Bearer a b c",
            "return=" + "x" * 3000,
            "a" * 20_000,
            "-1",
            "99999999999999999999",
        ]
    ),
).map(lambda text: text.encode("latin-1"))


def test_any_header_is_a_success_or_a_4xx(searched: TestClient, store: Store) -> None:
    @examples(80, store)
    @given(
        st.dictionaries(_HEADER_NAMES, _HEADER_VALUES, min_size=1, max_size=3),
        st.sampled_from(
            [
                "GET /fhir/Patient",
                "GET /fhir/Patient/example",
                "POST /fhir/Patient",
                "GET /fhir/metadata",
                "POST /fhir",
            ]
        ),
    )
    def request(headers: dict[str, bytes], route: str) -> None:
        method, url = route.split()
        body = b'{"resourceType":"Patient"}' if url.endswith("Patient") else b"{}"
        before = digest(store)
        response = searched.request(
            method, url, content=body if method == "POST" else None, headers=headers
        )
        assert response.status_code < 500, (route, headers, response.text[:2000])
        if method == "GET" or response.status_code >= 400:
            assert digest(store) == before

    request()
