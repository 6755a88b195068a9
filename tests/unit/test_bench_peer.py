"""The peer benchmark's own arithmetic (``bench.peer``), offline: what it reads
from wrk's output, whose CPU it counts, and the ids it takes from a
transaction's answer."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import peer
from bench.rest_core import cpu_ticks_to_seconds


def _stat(ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> list[str]:
    """``/proc/<pid>/stat`` fields from the state on, as ``proc_stats`` gives them."""
    fields = ["S", str(ppid), "0", "0", "0", "0", "0", "0", "0", "0", "0"]
    return [*fields, str(utime), str(stime), str(cutime), str(cstime), "20", "0"]


def test_a_tree_counts_its_root_its_descendants_and_their_reaped_children() -> None:
    stats = {
        100: _stat(1, 10, 5, cutime=7, cstime=1),  # a postmaster whose backend exited
        101: _stat(100, 20, 2),
        102: _stat(101, 3, 3),  # a grandchild
        200: _stat(1, 1000, 1000),  # someone else's process
        201: _stat(200, 50, 50),
    }
    assert peer.tree_cpu_ticks([100], stats) == 10 + 5 + 7 + 1 + 20 + 2 + 3 + 3
    assert peer.tree_cpu_ticks([101, 999], stats) == 20 + 2 + 3 + 3  # a gone root is no one
    assert peer.tree_cpu_ticks([100, 101], stats) == peer.tree_cpu_ticks([100], stats)


def test_the_cpu_of_a_real_process_tree_includes_a_grandchild_that_has_exited() -> None:
    """A child that starts a grandchild burning CPU and waits for it: the
    grandchild's time shows in the child's tree after it is gone."""
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"
        "print('done', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE)
    try:
        before = peer.tree_cpu_ticks([child.pid], peer.snapshot())
        assert child.stdout is not None
        assert child.stdout.readline() == b"done\n"
        after = peer.tree_cpu_ticks([child.pid], peer.snapshot())
        assert 0.25 <= cpu_ticks_to_seconds(after - before) <= 2.0
    finally:
        child.kill()
        child.wait()


WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8080
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.12ms    3.01ms  41.20ms   80.00%
  8601 requests in 5.00s, 9.81MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1720.05
Transfer/sec:      1.96MB
PEER-RESULT {"requests": 8601, "duration_us": 5000312, "connect": 0, "read": 1, "write": 0, \
"status": 3, "timeout": 0, "p50_us": 8704, "p99_us": 21593, "max_us": 41200}
"""


def test_the_figures_are_the_ones_the_lua_done_function_printed() -> None:
    figures = peer.parse_wrk(WRK_OUTPUT)
    assert figures.requests == 8601
    assert figures.seconds == pytest.approx(5.000312)
    assert figures.errors == 4  # one read error and three statuses >= 400
    assert (figures.p50_ms, figures.p99_ms, figures.max_ms) == (8.704, 21.593, 41.2)


def test_wrk_output_without_the_line_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="PEER-RESULT"):
        peer.parse_wrk("unable to connect to 127.0.0.1:8080 Connection refused\n")


def test_the_script_carries_every_request_and_no_body_can_close_its_string() -> None:
    items = [peer.Item("GET", "/fhir/Patient/a"), peer.Item("PUT", "/fhir/Patient/a", b'["]]"]')]
    script = peer.lua_script(items, "t0k", 2, "update")
    assert "[[GET]], [[/fhir/Patient/a]], nil" in script
    assert '[=[["]]"]]=]' in script
    assert "local threads_total = 2" in script
    assert "[[Bearer t0k]]" in script


@pytest.mark.parametrize(
    "location",
    [
        "Patient/abc",
        "Patient/abc/_history/1",
        "http://127.0.0.1:1/fhir/Patient/abc/_history/2",
    ],
)
def test_the_id_of_a_created_patient_comes_from_its_location(location: str) -> None:
    assert peer._id_from_location(location, "Patient") == "abc"


def test_a_location_of_another_type_is_refused() -> None:
    with pytest.raises(RuntimeError):
        peer._id_from_location("Observation/abc", "Patient")


def test_medians_and_cpu_per_thousand_requests() -> None:
    runs = [
        peer.Run(
            target="gateway-pg",
            op="read",
            run=n,
            connections=16,
            requests=1000 * n,
            errors=0,
            seconds=10.0,
            req_per_s=100.0 * n,
            p50_ms=1.0 * n,
            p99_ms=2.0 * n,
            cpu_s={"app": 1.0 * n, "postgres": 0.5 * n},
            wrk_cpu_pct=5.0,
            other_cpu_pct=1.0,
            load1=0.5,
            spread="8/8",
        )
        for n in (1, 2, 3)
    ]
    summary = peer.summarise(runs)
    assert (summary.req_per_s, summary.p50_ms, summary.p99_ms) == (200.0, 2.0, 4.0)
    assert summary.cpu_per_1k == pytest.approx(1.5)
    assert summary.parts_per_1k == pytest.approx({"app": 1.0, "postgres": 0.5})
    assert summary.per_cpu_s == pytest.approx(1000 / 1.5)


def test_what_a_server_logged_about_failed_requests_is_picked_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    before = '{"level":"error","message":"before the run"}\n'
    log.write_text(
        before
        + '{"level":"info","logger":"uvicorn.error","message":"Started server process"}\n'
        + '{"level":"info","logger":"gateway.access","path":"/fhir/Patient","status":200}\n'
        + '{"level":"info","logger":"gateway.access","path":"/fhir/Patient","status":429}\n'
        + '{"level":"ERROR","msg":"Database error"}\n'
    )
    found = peer._errors_logged(log, len(before))
    assert found == [
        '{"level":"info","logger":"gateway.access","path":"/fhir/Patient","status":429}',
        '{"level":"ERROR","msg":"Database error"}',
    ]


def test_a_run_that_completed_no_request_counts_in_the_rate_but_not_in_latency() -> None:
    def run(n: int, requests: int) -> peer.Run:
        return peer.Run(
            target="gateway-sqlite",
            op="everything",
            run=n,
            connections=16,
            requests=requests,
            errors=0,
            seconds=5.0,
            req_per_s=requests / 5.0,
            p50_ms=400.0 if requests else 0.0,
            p99_ms=900.0 if requests else 0.0,
            cpu_s={"app": 4.0},
            wrk_cpu_pct=1.0,
            other_cpu_pct=1.0,
            load1=0.5,
            spread="8/8",
        )

    summary = peer.summarise([run(1, 100), run(2, 0), run(3, 50)])
    assert summary.empty == 1
    assert summary.req_per_s == 10.0  # 20, 0 and 10 req/s
    assert (summary.p50_ms, summary.p99_ms) == (400.0, 900.0)
    assert summary.cpu_per_1k == pytest.approx((40.0 + 80.0) / 2)
    assert math.isnan(peer.summarise([run(1, 0)]).per_cpu_s)
