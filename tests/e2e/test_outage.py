"""The database goes away under a running ``gateway serve --workers 2`` and
comes back: meanwhile every request is answered 503 with an
OperationOutcome, ``/readyz`` says 503 naming what failed, no process
exits; afterwards the server serves again by itself, without a restart,
nothing it acknowledged is lost and ``gateway audit verify`` finds the log
intact (issue 30).

How the faults are made, for real (no mock of the driver):

- **SQLite read-only**: the database file, its ``-wal`` and their folder
  are made unwritable. As root (these tests' machines), file modes do not
  stop writes, so the files are made immutable (``chattr +i``, which root
  obeys too; ext4, xfs and btrfs have it); as another user, ``chmod a-w``.
  The ``-shm`` file is left alone there: SQLite maps it into memory, and a
  write to a mapped page of an immutable file is a SIGBUS, which kills a
  process before any handler runs (what the probe of issue 30 met). A test
  of its own makes it unwritable too: the supervisor replaces the worker,
  the new one waits for its database (answering 503), and the log says
  which signal.
- **SQLite on a full disk**: the database on a small tmpfs (root mounts
  it), filled to its last byte by a file, then the file removed.
- **PostgreSQL stopped**: ``pg_ctl stop -m fast`` on a throwaway cluster
  while clients write, then ``pg_ctl start``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.store import open_store
from tests.e2e.test_audit_cli import audit
from tests.e2e.test_server import register, token_for
from tests.support.postgres import Cluster, ClusterUnavailable, _binary, start_cluster
from tests.support.serving import start_node, wait_until_ready

# How long the server may take to say it is (un)ready once the database
# changes: readiness is kept a second, a start retried after up to 4 s.
_SETTLE_S = 30.0
# Each worker keeps its readiness a second from when its check began; past
# this after a change, no answer from before it is served (unless a check
# begun before it is still running, which a loaded machine allows but the
# several probes of _both_say make unlikely to pass unseen).
_READINESS_KEPT_S = 1.5


def _immutable_works(directory: Path) -> bool:
    probe = directory / "immutable-probe"
    probe.write_text("x")
    try:
        made = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)
        if made.returncode != 0:
            return False
        try:
            with probe.open("a") as handle:
                handle.write("y")
        except PermissionError:
            return True
        return False
    except FileNotFoundError:  # no chattr
        return False
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
        probe.unlink()


@contextmanager
def _unwritable(paths: list[Path]) -> Iterator[None]:
    """``paths`` unwritable for the gateway's processes while inside."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
        try:
            time.sleep(_READINESS_KEPT_S)
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(modes[path] & ~0o222)
        try:
            time.sleep(_READINESS_KEPT_S)
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def _until(
    check: Callable[[], bool], deadline_s: float, what: str, process: subprocess.Popen[bytes]
) -> float:
    """Wait until ``check()``; the seconds it took."""
    began = time.monotonic()
    while not check():
        assert process.poll() is None, f"the server exited while waiting for {what}"
        assert time.monotonic() - began < deadline_s, f"no {what} within {deadline_s} s"
        time.sleep(0.1)
    return time.monotonic() - began


def _readyz(base: str) -> httpx.Response:
    return httpx.get(f"{base}/readyz", timeout=10)


def _both_say(base: str, status: int) -> bool:
    """Whether ``/readyz`` answers ``status`` several times running: each
    worker keeps its own answer a second, and either may take a probe."""
    return all(_readyz(base).status_code == status for _ in range(4))


def _is_outcome_503(answer: httpx.Response) -> bool:
    return answer.status_code == 503 and answer.json()["resourceType"] == "OperationOutcome"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_sqlite_made_read_only_answers_503_and_recovers_without_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0 and not _immutable_works(data):
        pytest.skip("running as root where files cannot be made immutable (chattr +i)")
    database = data / "gateway.db"
    url = f"sqlite:///{database}"
    key = register(url, tmp_path, "gp-system")
    token = token_for(url, "gp-system", key)
    log = tmp_path / "server.log"
    process, base = start_node(url, tmp_path, log, workers=2)
    try:
        wait_until_ready(process, base, log)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            created = http.post("/fhir/Patient", json={"resourceType": "Patient"})
            assert created.status_code == 201
            patient = created.json()["id"]

            with _unwritable([database, Path(f"{database}-wal"), data]):
                took = _until(lambda: _both_say(base, 503), _SETTLE_S, "readyz 503", process)
                outcome = _readyz(base).json()
                assert outcome["resourceType"] == "OperationOutcome"
                assert any("store" in i["diagnostics"] for i in outcome["issue"]), outcome
                for _ in range(6):  # both workers, writes and reads alike
                    written = http.post("/fhir/Patient", json={"resourceType": "Patient"})
                    assert _is_outcome_503(written), (written.status_code, written.text)
                    read = http.get(f"/fhir/Patient/{patient}")
                    assert _is_outcome_503(read), (read.status_code, read.text)
                    assert "Patient" not in read.text.replace("OperationOutcome", "")
                assert process.poll() is None
                print(f"readyz said 503 {took:.1f} s after the files became unwritable")

            took = _until(lambda: _both_say(base, 200), _SETTLE_S, "readyz 200", process)
            print(f"readyz said 200 {took:.1f} s after the files became writable again")
            for _ in range(6):
                again = http.post("/fhir/Patient", json={"resourceType": "Patient"})
                assert again.status_code == 201, again.text
                assert http.get(f"/fhir/Patient/{patient}").status_code == 200
        assert process.poll() is None
    finally:
        _stop(process)
    assert "Traceback" not in log.read_text() or "StoreUnavailable" in log.read_text()
    verified = audit(url, tmp_path / "audit-key.pem", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_sqlite_shm_made_unwritable_kills_workers_but_not_the_server(tmp_path: Path) -> None:
    """The probe's case: the -shm file unwritable too. A worker writing to
    its mapped page dies of SIGBUS (no handler can run); its traceback is
    in the log, uvicorn's supervisor starts another, and that one waits
    for its database answering 503 instead of exiting (which stopped the
    whole server before). Afterwards the server serves without a restart."""
    if os.geteuid() != 0:
        pytest.skip("a mapped -shm made unwritable needs chattr +i (root)")
    data = tmp_path / "data"
    data.mkdir()
    if not _immutable_works(data):
        pytest.skip("files cannot be made immutable here (chattr +i)")
    database = data / "gateway.db"
    url = f"sqlite:///{database}"
    key = register(url, tmp_path, "gp-system")
    token = token_for(url, "gp-system", key)
    log = tmp_path / "server.log"
    process, base = start_node(url, tmp_path, log, workers=2)
    try:
        wait_until_ready(process, base, log)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            assert http.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code == 201
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm"), data]
            with _unwritable(files):
                answers: dict[str, int] = {}
                ends = time.monotonic() + 10
                while time.monotonic() < ends:
                    try:
                        status = str(
                            http.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code
                        )
                    except httpx.TransportError:  # the request a dying worker held
                        status = "cut off"
                    answers[status] = answers.get(status, 0) + 1
                    time.sleep(0.1)
                assert process.poll() is None, log.read_text()[-3000:]
                assert set(answers) <= {"503", "cut off"}, answers
                assert answers.get("cut off", 0) <= 2, answers
                assert _both_say(base, 503)
            _until(lambda: _both_say(base, 200), _SETTLE_S, "readyz 200", process)
            # The probes may all have reached the worker that lived: the one
            # started in place of the dead may still be waiting out its
            # start's backoff (seconds, on a loaded machine), answering 503
            # meanwhile. Each answer is one or the other; then writes succeed.
            after: list[int] = []

            def written() -> bool:
                after.append(
                    http.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code
                )
                return after[-1] == 201

            _until(written, _SETTLE_S, "a write accepted", process)
            assert set(after) <= {201, 503}, after
    finally:
        _stop(process)
    text = log.read_text()
    assert "Bus error" in text, "a worker's fatal signal is in the log"
    verified = audit(url, tmp_path / "audit-key.pem", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@contextmanager
def _small_disk(directory: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``directory`` (root only)."""
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr!r}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=False)


def _fill(directory: Path) -> Path:
    """Fill ``directory``'s filesystem to the last byte; the filler file."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 10, 1):  # MiBs, then the last KiBs and bytes
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(descriptor)
    return filler


def test_sqlite_on_a_full_disk_answers_503_and_recovers_when_space_is_freed(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem to fill needs root")
    with _small_disk(tmp_path / "disk", 64) as disk:
        database = disk / "gateway.db"
        url = f"sqlite:///{database}"
        key = register(url, tmp_path, "gp-system")
        token = token_for(url, "gp-system", key)
        log = tmp_path / "server.log"
        process, base = start_node(url, tmp_path, log, workers=2)
        acknowledged: list[str] = []
        try:
            wait_until_ready(process, base, log)
            headers = {"Authorization": f"Bearer {token}"}
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {"resourceType": "Patient", "name": [{"family": "F" * 200}]},
                        "request": {"method": "POST", "url": "Patient"},
                    }
                    for _ in range(50)
                ],
            }
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                assert http.post("/fhir", json=bundle).status_code == 200
                filler = _fill(disk)
                time.sleep(_READINESS_KEPT_S)  # no answer from before the disk was full
                _until(lambda: _both_say(base, 503), _SETTLE_S, "readyz 503", process)
                assert "full" in _readyz(base).text
                statuses: list[int] = []
                for _ in range(30):
                    answer = http.post("/fhir", json=bundle)
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        acknowledged += [
                            e["response"]["location"].split("/")[1] for e in answer.json()["entry"]
                        ]
                    else:
                        assert _is_outcome_503(answer), (answer.status_code, answer.text[:500])
                assert 503 in statuses, statuses
                assert process.poll() is None
                filler.unlink()
                took = _until(lambda: _both_say(base, 200), _SETTLE_S, "readyz 200", process)
                print(f"readyz 200 {took:.1f} s after the space was freed")
                answer = http.post("/fhir", json=bundle)
                assert answer.status_code == 200, answer.text[:500]
        finally:
            _stop(process)
        store = open_store(url)
        try:
            lost = [id_ for id_ in acknowledged if store.read("Patient", id_) is None]
        finally:
            store.close()
        assert not lost, f"{len(lost)} acknowledged writes lost"
        verified = audit(url, tmp_path / "audit-key.pem", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def _pg_ctl(cluster: Cluster, *args: str) -> None:
    subprocess.run(
        [*cluster._run_as, _binary("pg_ctl"), *args, "-D", f"{cluster.directory}/data"],
        capture_output=True,
        check=True,
        timeout=120,
    )


def _pg_start(cluster: Cluster) -> None:
    """Start the cluster ``start_cluster`` made and ``_pg_ctl stop`` stopped,
    with the options it was first started with."""
    _pg_ctl(
        cluster,
        "start",
        "-w",
        "-t",
        "60",
        "-l",
        f"{cluster.directory}/log",
        "-o",
        f"-F -p {cluster.port} -k {cluster.directory} -c listen_addresses=127.0.0.1"
        " -c max_connections=200",
    )


class _Load:
    """Clients creating Patients and reading them back until stopped; each
    answer's status and what was acknowledged (201) are kept."""

    def __init__(self, base: str, token: str, clients: int = 3) -> None:
        self.statuses: list[tuple[float, int]] = []
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(base, token), daemon=True)
            for _ in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, base: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/fhir/Patient", json={"resourceType": "Patient"})
                except httpx.TransportError as exc:
                    self.failures.append(f"transport: {exc!r}")
                    time.sleep(0.1)
                    continue
                self.statuses.append((time.monotonic(), answer.status_code))
                if answer.status_code == 201:
                    self.acknowledged.append(answer.json()["id"])
                elif answer.status_code != 503:
                    self.failures.append(f"{answer.status_code}: {answer.text[:300]}")
                else:
                    assert answer.json()["resourceType"] == "OperationOutcome"
                    time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


@pytest.mark.postgres
def test_postgres_stopped_under_load_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    try:
        cluster = start_cluster()
    except (ClusterUnavailable, OSError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        url = cluster.create_database("outage")
        key = register(url, tmp_path, "gp-system")
        token = token_for(url, "gp-system", key)
        log = tmp_path / "server.log"
        process, base = start_node(url, tmp_path, log, workers=2)
        try:
            wait_until_ready(process, base, log)
            load = _Load(base, token)
            try:
                time.sleep(2)
                stopped_at = time.monotonic()
                _pg_ctl(cluster, "stop", "-m", "fast", "-w")
                time.sleep(_READINESS_KEPT_S)  # no answer from before it stopped
                _until(lambda: _both_say(base, 503), _SETTLE_S, "readyz 503", process)
                outcome = _readyz(base).json()
                assert outcome["resourceType"] == "OperationOutcome", outcome
                time.sleep(3)  # the load meets the outage
                assert process.poll() is None
                _pg_start(cluster)
                started_at = time.monotonic()
                took = _until(lambda: _both_say(base, 200), _SETTLE_S, "readyz 200", process)
                print(f"readyz 200 {took:.1f} s after PostgreSQL started again")
                time.sleep(3)  # the load after it
            finally:
                load.stop()
            assert not load.failures, load.failures[:5]
            during = [s for t, s in load.statuses if stopped_at + 1 < t < started_at]
            after = [s for t, s in load.statuses if t > started_at + took + 1]
            assert 503 in during
            assert set(during) <= {201, 503}
            assert after and 201 in after
            assert after.count(503) <= len(after) // 10, after
            assert process.poll() is None
        finally:
            _stop(process)
        store = open_store(url, pool_size=1)
        try:
            lost = [id_ for id_ in load.acknowledged if store.read("Patient", id_) is None]
        finally:
            store.close()
        assert not lost, f"{len(lost)} acknowledged writes lost"
        verified = audit(url, tmp_path / "audit-key.pem", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        cluster.stop()


def test_a_server_started_while_its_database_is_down_waits_and_then_serves(
    tmp_path: Path,
) -> None:
    """PostgreSQL down at ``gateway serve``'s start: the server does not
    exit; once the database is up it serves."""
    try:
        cluster = start_cluster()
    except (ClusterUnavailable, OSError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        url = cluster.create_database("late")
        _pg_ctl(cluster, "stop", "-m", "fast", "-w")
        log = tmp_path / "server.log"
        process, base = start_node(url, tmp_path, log, workers=2)
        try:
            # Each try waits out the pool's 10 s connect timeout, then says so.
            _until(lambda: "cannot be used yet" in log.read_text(), 60, "a word", process)
            time.sleep(2)
            assert process.poll() is None, log.read_text()
            _pg_start(cluster)
            wait_until_ready(process, base, log)
        finally:
            _stop(process)
    finally:
        cluster.stop()
