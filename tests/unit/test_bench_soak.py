"""The soak's pure parts (``bench.soak``): a window's figures from its tallies,
the warm-up it leaves out, the RSS growth and the verdict, the requests each
kind sends, and how it finds a process's memory. The soak itself runs for
half an hour against a real server: it is not run here."""

from __future__ import annotations

import os
import random
from collections import Counter
from datetime import datetime

import pytest

from bench import soak


def _window(
    number: int,
    rss: list[list[int]],
    errors: int = 0,
    latencies: list[float] | None = None,
    server_errors: dict[str, int] | None = None,
) -> soak.Window:
    tally = soak.Tally(latencies_ms=latencies or [10.0, 20.0], statuses=Counter({200: 2}))
    for _ in range(errors):
        tally.error("HTTP 500", "boom")
    return soak.make_window(
        number, 60.0 * (number + 1), {"read": tally}, rss, [50_000], server_errors or {}, [], 0, 1.0
    )


def test_a_window_counts_each_kind_and_takes_percentiles_of_its_latencies() -> None:
    read = soak.Tally(
        latencies_ms=[float(n) for n in range(1000, 0, -1)], statuses=Counter({200: 1000})
    )
    hidden = soak.Tally(latencies_ms=[50.0], statuses=Counter({404: 1}))
    slow = soak.Tally(latencies_ms=[900.0], statuses=Counter({500: 1}))
    slow.error("HTTP 500", "x" * 1000)
    window = soak.make_window(
        0,
        60.0,
        {"read": read, "hidden": hidden, "summary": slow},
        [[100, 110], [200]],
        [10],
        {"boom": 2},
        ["Traceback"],
        1,
        2.0,
    )
    assert list(window.kinds) == ["read", "hidden", "summary"]  # in KINDS' order
    assert window.kinds["read"].p50_ms == 500.0
    assert window.kinds["read"].p99_ms == 990.0
    assert window.kinds["read"].max_ms == 1000.0
    assert window.kinds["summary"].errors == 1
    assert len(window.kinds["summary"].samples[0]) < 400  # a sample is cut short
    assert window.requests == 1002
    assert window.errors == 1 + 2 + 1  # the clients', the server log's, a replaced worker
    assert window.p99_ms == 990.0
    assert window.worker_rss_kib == [110, 200]  # each worker's last sample


def test_an_empty_kind_has_no_percentiles() -> None:
    figures = soak.kind_window(soak.Tally())
    assert figures.requests == 0
    assert figures.p50_ms is None and figures.p99_ms is None


def test_tallies_of_two_load_processes_merge() -> None:
    one = soak.Tally(latencies_ms=[1.0], statuses=Counter({200: 1}))
    two = soak.Tally(latencies_ms=[2.0], statuses=Counter({200: 1, 429: 1}))
    two.error("HTTP 429", "slow down")
    one.merge(two)
    assert one.latencies_ms == [1.0, 2.0]
    assert one.statuses == Counter({200: 2, 429: 1})
    assert one.errors == 1 and one.problems == Counter({"HTTP 429": 1})


def test_the_warm_up_is_whole_windows_and_leaves_two_to_compare() -> None:
    assert soak.warmup_windows(300, 60, 30) == 5
    assert soak.warmup_windows(330, 60, 30) == 6  # a window partly in the warm-up is left out
    assert soak.warmup_windows(0, 60, 30) == 0
    assert soak.warmup_windows(600, 60, 5) == 3


def test_rss_is_compared_from_the_first_window_after_the_warm_up_to_the_last() -> None:
    windows = [
        _window(0, [[50_000, 80_000], [60_000]]),  # warming up: left out
        _window(1, [[100_000, 101_000, 99_000], [100_000]]),
        _window(2, [[130_000], [104_000]]),
        _window(3, [[108_000, 109_000, 110_000], [105_000]]),
    ]
    growth = soak.rss_growth(windows, 1)
    assert [g.start_kib for g in growth] == [100_000, 100_000]
    assert [g.end_kib for g in growth] == [109_000, 105_000]
    assert [g.peak_kib for g in growth] == [130_000, 105_000]
    assert growth[0].growth == pytest.approx(0.09)
    assert all(g.flat for g in growth)  # a peak that comes back down is no growth
    assert soak.verdict(windows, 1).passed


def test_a_worker_growing_more_than_ten_percent_fails() -> None:
    windows = [_window(n, [[100_000 + n * 4_000], [100_000]]) for n in range(5)]
    result = soak.verdict(windows, 1)  # 104,000 -> 116,000: +11.5%
    assert not result.passed
    assert not result.growth[0].flat and result.growth[1].flat
    assert any("worker 0" in reason for reason in result.reasons)


def test_any_error_fails_the_soak_whatever_the_memory() -> None:
    flat = [[100_000], [100_000]]
    assert not soak.verdict([_window(0, flat), _window(1, flat, errors=1)], 0).passed
    assert not soak.verdict([_window(0, flat), _window(1, flat, server_errors={"x": 1})], 0).passed
    assert not soak.verdict([_window(0, flat), _window(1, flat)], 0, setup_errors=1).passed
    assert soak.verdict([_window(0, flat), _window(1, flat)], 0).passed


def test_too_short_a_run_to_judge_memory_does_not_pass() -> None:
    result = soak.verdict([_window(0, [[100_000]])], 0)
    assert not result.passed
    assert result.reasons == ["too few windows after the warm-up to judge RSS"]


def test_the_summary_says_the_warm_up_and_the_verdict() -> None:
    windows = [_window(n, [[100_000], [100_000]]) for n in range(4)]
    text = "\n".join(soak.summary_lines(windows, soak.verdict(windows, 2), 60))
    assert "the first 2 window(s) (2 min) excluded" in text
    assert "PASS" in text
    assert "worker 1" in text


def _plan() -> soak.Plan:
    people = [soak.Person(f"p{n}", f"99900000{n:02d}") for n in range(5)]
    return soak.Plan(
        host="127.0.0.1",
        port=8080,
        tokens={role: f"token-{role}" for role in ("trust", "gp", "council", "hospital")},
        mix={"read": 1},
        everyone=people,
        gp_sees=people[:1],
        gp_hidden=people[1:],
        council_sees=people[2:],
        write_people=["w1", "w2"],
        ingest_people=[soak.IngestPerson(n, f"99911111{n:02d}") for n in range(4)],
        clients=2,
        start=0.0,
        window=60.0,
        windows=1,
        timeout=60.0,
        seed=1,
    )


def test_an_update_needs_something_created_first() -> None:
    plan, state = _plan(), soak._ClientState(random.Random(1))
    kind, request = soak.next_request(plan, "update", 0, state)
    assert kind == "create"
    assert request.startswith(b"POST /fhir/Observation HTTP/1.1\r\n")
    state.created.append(("o1", state.subject))
    kind, request = soak.next_request(plan, "update", 0, state)
    assert kind == "update"
    assert request.startswith(b"PUT /fhir/Observation/o1 HTTP/1.1\r\n")
    assert b'"id":"o1"' in request and state.subject.encode() in request


def test_hidden_reads_are_the_gps_of_people_it_does_not_see() -> None:
    plan, state = _plan(), soak._ClientState(random.Random(1))
    for _ in range(20):
        _, request = soak.next_request(plan, "hidden", 0, state)
        assert b"Bearer token-gp" in request
        assert b"/fhir/Patient/p0 " not in request


def test_an_ingest_person_is_admitted_then_discharged_over_a_few_visit_ids() -> None:
    plan, state = _plan(), soak._ClientState(random.Random(1))
    events: list[tuple[int, str]] = []
    for _ in range(40):
        _, request = soak.next_request(plan, "ingest", 1, state)
        assert b"Bearer token-hospital" in request
        body = request.split(b"\r\n\r\n", 1)[1].decode("latin-1")
        msh, evn, pid = body.split("\r")[:3]
        assert msh.split("|")[3] == soak.INGEST_HOSPITAL
        events.append((int(pid.split("|")[3][:10][-2:]), evn.split("|")[1]))
    for person in {p for p, _ in events}:
        assert person % plan.clients == 1  # each client its own people
        mine = [e for p, e in events if p == person]
        assert mine == ["A01", "A03"] * (len(mine) // 2) + ["A01"] * (len(mine) % 2)
    assert max(state.visits.values()) > soak.VISITS_PER_PERSON  # visit ids are reused


def test_the_adt_message_names_its_visit() -> None:
    person = soak.IngestPerson(3, "9991111103")
    text = soak.adt_message(person, "A01", 2, 7, datetime(2026, 1, 2, 3, 4, 5)).decode("latin-1")
    assert "ADT^A01" in text
    assert f"V{3 * soak.VISITS_PER_PERSON + 2:08d}" in text


def test_ingest_answers_are_read_for_their_rejections() -> None:
    answer = (
        b'{"resourceType":"Parameters","parameter":[{"name":"summary","part":['
        b'{"name":"records","valueInteger":1},{"name":"rejected","valueInteger":0}]}]}'
    )
    assert soak.ingest_rejected(answer) == 0
    assert soak.ingest_rejected(answer.replace(b'"valueInteger":0', b'"valueInteger":2')) == 2
    assert soak.ingest_rejected(b"not json") == -1


def test_the_mix_names_known_kinds() -> None:
    assert soak.parse_mix("read=3, search=1") == {"read": 3, "search": 1}
    with pytest.raises(SystemExit):
        soak.parse_mix("reed=3")
    with pytest.raises(SystemExit):
        soak.parse_mix("read=0")
    assert set(soak.parse_mix(soak.DEFAULT_MIX)) == set(soak.KINDS)


def test_this_process_has_a_resident_set_and_a_gone_one_has_none() -> None:
    mine = soak.rss_kib(os.getpid())
    assert mine is not None and mine > 1000
    assert soak.rss_kib(2**22 + 1) is None
    assert os.getpid() in soak.children(os.getppid())
    files = soak.rss_file_kib(os.getpid())  # the interpreter's code, at least
    assert files is not None and 0 < files < mine
    assert soak.rss_file_kib(2**22 + 1) is None


def test_a_window_line_says_how_much_of_each_worker_maps_files() -> None:
    tally = soak.Tally(latencies_ms=[5.0], statuses=Counter({200: 1}))
    window = soak.make_window(
        0, 60.0, {"read": tally}, [[200 * 1024], [190 * 1024]], [], {}, [], 0, 1.0,
        [27 * 1024, 26 * 1024],
    )  # fmt: skip
    assert "RSS 200/190 MiB (files 27/26)" in soak.window_line(window)
