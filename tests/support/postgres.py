"""A throwaway PostgreSQL cluster: ``initdb`` and ``pg_ctl`` in a temporary
directory, listening on a free loopback port, removed when stopped.

Used by the test suite and the benchmarks. PostgreSQL refuses to run as root,
so when we are root the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing or the cluster would not start."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise ClusterUnavailable(
        f"{name} not found: install PostgreSQL's server package (Debian: postgresql)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    directory: str
    port: int
    _run_as: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        subprocess.run(
            [
                *self._run_as,
                _binary("pg_ctl"),
                "stop",
                "-D",
                f"{self.directory}/data",
                "-m",
                "immediate",
                "-w",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster(settings: Mapping[str, str] | None = None) -> Cluster:
    """Start a cluster with trust authentication on 127.0.0.1 only; fsync off,
    as nothing in it needs to outlive the process; ``settings`` are more
    server settings (``-c name=value``)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    directory = tempfile.mkdtemp(prefix="gateway-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ClusterUnavailable("running as root and there is no postgres user") from exc
        os.chown(directory, user.pw_uid, user.pw_gid)
        os.chmod(directory, 0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = f"{directory}/data"
    steps = [
        [
            *run_as,
            initdb,
            "-D",
            data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-instructions",
        ],
        [
            *run_as,
            pg_ctl,
            "start",
            "-D",
            data,
            "-w",
            "-t",
            "60",
            "-l",
            f"{directory}/log",
            "-o",
            f"-F -p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
            + "".join(f" -c {name}={value}" for name, value in (settings or {}).items()),
        ],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = ""
            if os.path.exists(f"{directory}/log"):
                with open(f"{directory}/log") as handle:
                    log = handle.read()[-2000:]
            shutil.rmtree(directory, ignore_errors=True)
            raise ClusterUnavailable(
                f"{os.path.basename(step[len(run_as)])} failed: {result.stderr.strip()} {log}"
            )
    cluster = Cluster(directory=directory, port=port, _run_as=run_as)
    deadline = time.monotonic() + 30
    import psycopg

    while True:
        try:
            psycopg.connect(cluster.url, connect_timeout=2).close()
            return cluster
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                cluster.stop()
                raise
            time.sleep(0.1)
