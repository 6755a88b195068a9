"""The FHIR API under generated input: resources, Bundles and raw bodies
made from the R4 definitions (``tests/fuzz/fhir.py``), most nearly valid
and some made wrong on purpose, sent through the real app.

The property, for every request: the answer is a success or a 4xx with an
OperationOutcome, never a 5xx; and a request refused wrote nothing (every
table a write changes is as it was: ``digest``). The search URLs and the
tokens are in ``test_search_urls.py`` and ``test_tokens.py``.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import httpx
from hypothesis import event, given
from hypothesis import strategies as st

from gateway.store import Store
from tests.fuzz.conftest import digest, examples, fuzz_client
from tests.fuzz.fhir import (
    ODD_TEXT,
    WRITABLE,
    WRONG_VALUES,
    Json,
    mutated,
    nested,
    resource,
    to_bytes,
)

FHIR_JSON = {"content-type": "application/fhir+json"}


def answered(response: httpx.Response, what: str) -> Json:
    """The answer's body, once it is known to be a success, or a 4xx with
    an OperationOutcome; never a 5xx."""
    status = response.status_code
    event(f"{what.split()[0]} {status}")
    assert status < 500, f"{what}: {status} {response.text[:2000]}"
    if status == 204 or not response.content:
        return None
    body = response.json()
    if status >= 400:
        assert response.headers["content-type"].startswith("application/fhir+json"), what
        assert body["resourceType"] == "OperationOutcome", (what, body)
        assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal"), (what, body)
    return body


def refused_wrote_nothing(
    store: Store, before: tuple[int, ...], response: httpx.Response, what: str
) -> None:
    if response.status_code >= 400:
        assert digest(store) == before, f"{what}: refused ({response.status_code}) but wrote"


@st.composite
def bodies(draw: st.DrawFn, res_type: str | None = None) -> tuple[str, Json]:
    """A resource of a writable type, made wrong half the time."""
    chosen = res_type or draw(st.sampled_from(WRITABLE))
    body = draw(resource(chosen))
    if draw(st.booleans()):
        body = draw(mutated(body))
    return chosen, body


def test_create_is_a_success_or_a_4xx_that_wrote_nothing(store: Store) -> None:
    with fuzz_client(store) as client:

        @examples(150, store)
        @given(bodies())
        def create(case: tuple[str, Json]) -> None:
            res_type, body = case
            before = digest(store)
            response = client.post(f"/fhir/{res_type}", content=to_bytes(body), headers=FHIR_JSON)
            answered(response, f"POST {res_type}")
            refused_wrote_nothing(store, before, response, f"POST {res_type}")
            if response.status_code == 201:
                assert digest(store) != before
                answered(client.get(response.headers["location"]), "read what was created")

        create()


def test_update_is_a_success_or_a_4xx_that_wrote_nothing(store: Store) -> None:
    with fuzz_client(store) as client:

        @examples(60, store)
        @given(bodies(), st.sampled_from(["same", "same", "same", "other", "none", "odd"]))
        def update(case: tuple[str, Json], which: str) -> None:
            res_type, body = case
            res_id = "A81001-fuzz"  # the client's organisation's own id: created if absent
            if which == "same" and isinstance(body, dict):
                body = {**body, "id": res_id}
            elif which == "other" and isinstance(body, dict):
                body = {**body, "id": "someone-else"}
            elif which == "odd":
                res_id = "A81001-" + "9" * 70
            before = digest(store)
            response = client.put(
                f"/fhir/{res_type}/{res_id}", content=to_bytes(body), headers=FHIR_JSON
            )
            answered(response, f"PUT {res_type}/{res_id}")
            refused_wrote_nothing(store, before, response, f"PUT {res_type}")

        update()


CONDITIONS = ("ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince")
CONDITION_VALUES = st.sampled_from(
    [
        'W/"1"',
        '"1"',
        "1",
        'W/"99999999999999999999"',
        "W/",
        "identifier=x",
        "identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
        "_id=a&_id=b",
        "birthdate=gt1941-13-45",
        "*",
        "Mon, 07 Dec 2026 10:00:00 GMT",
        "",
    ]
)

_POINTERS = st.sampled_from(["/active", "/name/0/family", "/name/-", "/x", "", "gender", "/~2"])


@st.composite
def json_patches(draw: st.DrawFn) -> Json:
    """A JSON Patch document: operations right and wrong."""
    operations = []
    for _ in range(draw(st.integers(0, 3))):
        operation: dict[str, Any] = {
            "op": draw(
                st.one_of(
                    st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
                    WRONG_VALUES,
                )
            ),
            "path": draw(st.one_of(_POINTERS, WRONG_VALUES)),
        }
        if draw(st.booleans()):
            operation["value"] = draw(st.one_of(st.booleans(), WRONG_VALUES))
        if draw(st.booleans()):
            operation["from"] = draw(st.one_of(_POINTERS, WRONG_VALUES))
        operations.append(operation)
    return draw(st.one_of(st.just(operations), WRONG_VALUES)) if draw(st.booleans()) else operations


@st.composite
def json_patch_binaries(draw: st.DrawFn) -> Json:
    data = base64.b64encode(to_bytes(draw(json_patches()))).decode()
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}


@st.composite
def fhirpath_patches(draw: st.DrawFn) -> Json:
    """A FHIRPath Patch (a Parameters resource): operations right and wrong."""
    parameters = []
    for _ in range(draw(st.integers(0, 2))):
        parts: list[Json] = [
            {
                "name": "type",
                "valueCode": draw(
                    st.sampled_from(["add", "insert", "delete", "replace", "move", "bogus"])
                ),
            },
            {
                "name": "path",
                "valueString": draw(
                    st.sampled_from(["Patient", "Patient.name", "Patient.name[0]", "Patient.(", ""])
                ),
            },
        ]
        if draw(st.booleans()):
            parts.append({"name": "name", "valueString": draw(st.sampled_from(["active", "x"]))})
        if draw(st.booleans()):
            parts.append({"name": "value", "valueBoolean": True})
        if draw(st.booleans()):
            parts.append(
                {
                    "name": draw(st.sampled_from(["index", "source", "destination"])),
                    "valueInteger": draw(st.sampled_from([0, -1, 2**31 - 1])),
                }
            )
        parameters.append({"name": "operation", "part": parts})
    patch: Json = {"resourceType": "Parameters", "parameter": parameters}
    return draw(mutated(patch)) if draw(st.integers(0, 3)) == 0 else patch


@st.composite
def entries(draw: st.DrawFn) -> Json:
    """A Bundle entry: a request of any method, its resource generated."""
    method = draw(st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH", "HEAD", "BOGUS"]))
    res_type, body = draw(bodies())
    url = draw(
        st.sampled_from(
            [
                res_type,
                f"{res_type}/A81001-{draw(st.integers(0, 3))}",
                f"{res_type}?identifier=x",
                f"{res_type}/_history",
                "",
                "Patient/../../etc",
                f"http://elsewhere.example/{res_type}/1",
                f"{res_type}/{'9' * 40}",
            ]
        )
    )
    entry: dict[str, Any] = {"request": {"method": method, "url": url}}
    for field in draw(st.sets(st.sampled_from(CONDITIONS), max_size=2)):
        entry["request"][field] = draw(st.one_of(CONDITION_VALUES, WRONG_VALUES))
    if method == "PATCH" and draw(st.booleans()):
        entry["resource"] = draw(st.one_of(json_patch_binaries(), fhirpath_patches()))
    elif method in ("POST", "PUT") or draw(st.booleans()):
        entry["resource"] = body
    if draw(st.booleans()):
        entry["fullUrl"] = f"urn:uuid:{draw(st.uuids())}"
    if draw(st.integers(0, 9)) == 0:
        entry = draw(mutated(entry))
    return entry


@st.composite
def bundles(draw: st.DrawFn) -> Json:
    kind = draw(st.sampled_from(["transaction", "batch"]))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": draw(st.lists(entries(), min_size=1, max_size=4)),
    }
    if draw(st.integers(0, 3)) == 0:
        # One entry's resource referring to another's fullUrl, as a
        # transaction's placeholders do.
        first = bundle["entry"][0]
        first = first if isinstance(first, dict) else {}
        first["fullUrl"] = "urn:uuid:5b1f0c1e-8f44-4a43-9a4a-1d1c2b3a4d5e"
        bundle["entry"].append(
            {
                "fullUrl": "urn:uuid:6b1f0c1e-8f44-4a43-9a4a-1d1c2b3a4d5e",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "pulse"},
                    "subject": {"reference": first["fullUrl"]},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    if draw(st.integers(0, 4)) == 0:
        bundle = draw(mutated(bundle))
    return bundle


def test_transactions_and_batches_are_answered_and_a_refused_transaction_wrote_nothing(
    store: Store,
) -> None:
    with fuzz_client(store) as client:

        @examples(80, store)
        @given(bundles())
        def send(bundle: Json) -> None:
            before = digest(store)
            response = client.post("/fhir", content=to_bytes(bundle), headers=FHIR_JSON)
            body = answered(response, "POST /fhir")
            kind = bundle.get("type") if isinstance(bundle, dict) else None
            if kind == "transaction" or response.status_code >= 400:
                refused_wrote_nothing(store, before, response, "transaction")
            if response.status_code == 200 and kind == "batch":
                for entry in body.get("entry", []):
                    status = int(entry["response"]["status"].split()[0])
                    assert status < 500, entry

        send()


# Bodies that are not what a client should send at all: JSON that is not
# JSON, nested past any parser's limit, in other encodings, truncated.
_RAW = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"Patient"',
            b"1e400",
            b'{"resourceType":"Patient","birthDate":NaN}',
            b'{"resourceType":"Patient","multipleBirthInteger":Infinity}',
            b'{"resourceType":"Patient","multipleBirthInteger":99999999999999999999999}',
            b'{"resourceType":"Patient","multipleBirthInteger":-0}',
            b'{"resourceType":"Patient","active":true}{"x":1}',
            b'{"resourceType":"Patient","resourceType":"Observation"}',
            b'{"resourceType":"Patient","id":"a","id":"b"}',
            b'\xef\xbb\xbf{"resourceType":"Patient"}',
            '{"resourceType":"Patient"}'.encode("utf-16"),
            b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
            b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}',
            b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}',
            b"[" * 100_000,
            b'{"a":' * 100_000,
            to_bytes({"resourceType": "Patient", "extension": nested(3000, "list")}),
            json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{}] * 1500}).encode(),
        ]
    ),
    st.builds(lambda text: json.dumps({"resourceType": "Patient", text: text}).encode(), ODD_TEXT),
)


def test_any_body_is_a_success_or_a_4xx_that_wrote_nothing(store: Store) -> None:
    with fuzz_client(store) as client:

        @examples(100, store)
        @given(
            _RAW,
            st.sampled_from(["/fhir/Patient", "/fhir", "/fhir/Patient/A81001-raw"]),
            st.sampled_from(
                [
                    "application/fhir+json",
                    "application/json; charset=utf-16",
                    "application/fhir+xml",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                ]
            ),
        )
        def send(raw: bytes, path: str, content_type: str) -> None:
            before = digest(store)
            method = "PUT" if path.endswith("-raw") else "POST"
            response = client.request(
                method, path, content=raw, headers={"content-type": content_type}
            )
            answered(response, f"{method} {path} {content_type}")
            refused_wrote_nothing(store, before, response, f"{method} {path}")

        send()


def test_a_patch_is_a_success_or_a_4xx_that_wrote_nothing(store: Store) -> None:
    with fuzz_client(store) as client:
        created = client.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "active": True, "name": [{"family": "Okafor"}]},
        )
        url = created.headers["location"].split("/_history")[0]

        @examples(60, store)
        @given(
            st.one_of(
                json_patches().map(lambda p: ("application/json-patch+json", to_bytes(p))),
                fhirpath_patches().map(lambda p: ("application/fhir+json", to_bytes(p))),
            ),
            st.one_of(st.none(), CONDITION_VALUES),
        )
        def patch(case: tuple[str, bytes], if_match: str | None) -> None:
            content_type, body = case
            headers = {"content-type": content_type}
            if if_match is not None:
                headers["if-match"] = if_match
            before = digest(store)
            response = client.patch(url, content=body, headers=headers)
            answered(response, f"PATCH {body[:200]!r}")
            refused_wrote_nothing(store, before, response, "PATCH")

        patch()


def test_conditional_headers_are_a_success_or_a_4xx_that_wrote_nothing(store: Store) -> None:
    with fuzz_client(store) as client:

        @examples(60, store)
        @given(
            bodies("Patient"),
            st.dictionaries(
                st.sampled_from(["if-match", "if-none-exist", "if-none-match", "prefer", "accept"]),
                st.one_of(
                    CONDITION_VALUES,
                    st.sampled_from(
                        [
                            "return=representation",
                            "return=OperationOutcome",
                            "handling=strict",
                            "application/fhir+xml",
                            "*/*",
                            "text/html;q=0.1",
                        ]
                    ),
                    st.text(string.printable.strip(), max_size=30),
                ),
                max_size=3,
            ),
            st.sampled_from(
                [
                    "POST /fhir/Patient",
                    "PUT /fhir/Patient/A81001-h",
                    "PUT /fhir/Patient?identifier=x",
                    "DELETE /fhir/Patient?name=x",
                ]
            ),
        )
        def send(case: tuple[str, Json], headers: dict[str, str], route: str) -> None:
            _, body = case
            method, url = route.split()
            if method == "PUT" and url.endswith("-h") and isinstance(body, dict):
                body = {**body, "id": "A81001-h"}
            before = digest(store)
            response = client.request(
                method, url, content=to_bytes(body), headers={**FHIR_JSON, **headers}
            )
            answered(response, f"{route} {headers}")
            refused_wrote_nothing(store, before, response, route)

        send()
