"""Speed of consent enforcement (issue 5's targets).

Run ``python -m bench.consent``. In-process, on an otherwise idle machine:

1. the decision alone: ``consent.engine.decide`` for one resource whose
   person has 10 active Consents (nested provisions, actors, classes, codes,
   labels, data periods), p50 and p99 over many resources (target: p50
   under 50 microseconds);
2. the decision with its facts: ``AccessControl.visible`` on a stored
   version (JSON parse, facts extraction, decision), the person's facts
   already read for the request (as for every resource after the first);
3. a 100-result search (a patient's Observations of one code, with the
   total) with
   enforcement and without it, on SQLite (target: at most 1.3 times);
4. reading 300 of a patient's resources (what a ``$summary`` gathers) with
   and without enforcement: the added time (target: under 50 ms).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from consent.engine import decide
from consent.model import ACT_CODE, Person, Requester, ResourceFacts
from consent.parse import parse_consent
from gateway.access.control import AccessControl
from gateway.interactions import bundle, search
from gateway.interactions.types import ReturnPreference
from gateway.loading.source import ForSource, author_for
from gateway.search.query import parse_search
from gateway.store import open_store

GP = "A81001"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
CODES = ("364075005", "271649006", "86290005")  # a third of each patient's records each
SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}


def _actor(ods: str) -> dict[str, Any]:
    return {"reference": {"identifier": {"system": ODS, "value": ods}}}


def ten_consents() -> list[Any]:
    """Ten active privacy Consents of one person, none of which denies the GP
    what the benchmark asks about (so every provision is evaluated)."""
    raws = []
    for n in range(10):
        raws.append(
            {
                "resourceType": "Consent",
                "id": f"c{n}",
                "status": "active",
                "scope": SCOPE,
                "provision": {
                    "type": "permit",
                    "period": {"start": "2020-01-01"},
                    "provision": [
                        {"type": "deny", "actor": [_actor(f"X{n:04d}")]},
                        {
                            "type": "deny",
                            "class": [{"code": "MedicationStatement"}],
                            "actor": [_actor(f"Y{n:04d}")],
                        },
                        {
                            "type": "deny",
                            "code": [{"coding": [{"system": SNOMED, "code": f"9{n:05d}"}]}],
                            "dataPeriod": {"end": "2015-01-01"},
                        },
                        {
                            "type": "permit",
                            "actor": [_actor("E09000007")],
                            "securityLabel": [{"system": ACT_CODE, "code": "PSY"}],
                        },
                    ],
                },
            }
        )
    return [parse_consent(raw, lambda ref: None) for raw in raws]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def timed(work: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return samples


def bench_decision() -> None:
    person = Person("p1", frozenset({GP}), tuple(ten_consents()))
    requester = Requester(GP, "gp-practice", "TREAT")
    resources = [
        ResourceFacts(
            res_type="Observation",
            res_id=str(n),
            codes=frozenset({(SNOMED, str(364075005 + n % 7))}),
            clinical_low="2024-01-01T00:00:00.000000Z",
            clinical_high="2024-01-01T00:00:01.000000Z",
            author_ods="VM123",
        )
        for n in range(1000)
    ]
    now = "2026-06-01T00:00:00.000000Z"
    for facts in resources[:100]:
        decide(requester, person, facts, now)
    samples = []
    for facts in resources * 20:
        started = time.perf_counter_ns()
        decide(requester, person, facts, now)
        samples.append((time.perf_counter_ns() - started) / 1000)
    p50, p99 = percentiles(samples)
    verdict = "PASS" if p50 < 50 else "MISS"
    print(
        f"1. decision, 10 active Consents: p50 {p50:.1f} us, p99 {p99:.1f} us  [{verdict} < 50 us]"
    )


def _load(store: Any, patients: int, per_patient: int) -> list[str]:
    ids = []
    for p in range(patients):
        entries = [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{p:012d}",
                "resource": {
                    "resourceType": "Patient",
                    "generalPractitioner": [_actor(GP)["reference"]],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        ]
        for n in range(per_patient):
            entries.append(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "meta": {"source": "urn:ods:VM123"},
                        "status": "final",
                        "code": {"coding": [{"system": SNOMED, "code": CODES[n % 3]}]},
                        "subject": {"reference": f"urn:uuid:00000000-0000-4000-8000-{p:012d}"},
                        "effectiveDateTime": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
                        "valueQuantity": {"value": 60 + n % 30, "unit": "/min"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
        answer = bundle.transaction(
            store,
            ForSource(author_for("bench", "VM123")),
            {"resourceType": "Bundle", "type": "transaction", "entry": entries},
            base_url="http://bench/fhir",
            prefer=ReturnPreference.MINIMAL,
        )
        ids.append(answer["entry"][0]["response"]["location"].split("/")[-3])
    return ids


def bench_paths() -> None:
    workdir = tempfile.mkdtemp(prefix="bench-consent-")
    store = open_store(f"sqlite:///{workdir}/g.db")
    store.migrate()
    patients = _load(store, 20, 300)
    requester = Requester(GP, "gp-practice", "TREAT")

    # 2. per resource, the person's facts already read
    query = parse_search("Observation", [("subject", f"Patient/{patients[0]}"), ("_count", "300")])
    versions = search.search(store, query, visible=None, includable=bool).matches
    samples = []
    for _ in range(20):
        control = AccessControl(store, requester)
        control.visible(versions[0])  # reads the person
        for version in versions[1:]:
            started = time.perf_counter_ns()
            control.visible(version)
            samples.append((time.perf_counter_ns() - started) / 1000)
    p50, p99 = percentiles(samples)
    print(f"2. facts + decision per stored resource: p50 {p50:.1f} us, p99 {p99:.1f} us")

    # 3. a 100-result search, with and without enforcement
    def searching(enforced: bool, pid: str) -> None:
        q = parse_search(
            "Observation",
            [
                ("subject", f"Patient/{pid}"),
                ("code", f"{SNOMED}|{CODES[0]}"),
                ("_count", "100"),
                ("_sort", "-date"),
                ("_total", "accurate"),
            ],
        )
        if enforced:
            search.search(
                store, q, visible=AccessControl(store, requester).visible, includable=bool
            )
        else:
            search.search(store, q, visible=None, includable=bool)

    for enforced in (False, True):
        for pid in patients:
            searching(enforced, pid)
    plain = [t for pid in patients for t in timed(lambda pid=pid: searching(False, pid), 5)]
    enforced = [t for pid in patients for t in timed(lambda pid=pid: searching(True, pid), 5)]
    ratio = statistics.median(enforced) / statistics.median(plain)
    verdict = "PASS" if ratio <= 1.3 else "MISS"
    print(
        f"3. 100-result search (with total): {statistics.median(plain) * 1e3:.2f} ms plain, "
        f"{statistics.median(enforced) * 1e3:.2f} ms enforced, x{ratio:.2f}  [{verdict} <= 1.3]"
    )

    # 4. 300 of a patient's resources, with and without enforcement
    def reading(enforced: bool, pid: str) -> None:
        q = parse_search(
            "Observation", [("subject", f"Patient/{pid}"), ("_count", "300"), ("_total", "none")]
        )
        if enforced:
            search.search(
                store, q, visible=AccessControl(store, requester).visible, includable=bool
            )
        else:
            search.search(store, q, visible=None, includable=bool)

    plain = [t for pid in patients for t in timed(lambda pid=pid: reading(False, pid), 3)]
    enforced = [t for pid in patients for t in timed(lambda pid=pid: reading(True, pid), 3)]
    added = (statistics.median(enforced) - statistics.median(plain)) * 1e3
    verdict = "PASS" if added < 50 else "MISS"
    print(
        f"4. 300 resources: {statistics.median(plain) * 1e3:.1f} ms plain, "
        f"{statistics.median(enforced) * 1e3:.1f} ms enforced, +{added:.1f} ms  [{verdict} < 50 ms]"
    )
    store.close()


def main() -> int:
    print("bench.consent: in-process, one thread")
    bench_decision()
    bench_paths()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
