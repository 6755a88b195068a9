"""The real thing: ``gateway serve`` in its own process, driven over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import free_port
from tests.support.serving import wait_until_ready


class Server:
    def __init__(self, process: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.process, self.base, self.log = process, base, log


def gateway_command(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``gateway ARGS`` as an operator would, against ``database_url``."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GATEWAY_DATABASE_URL": database_url},
    )


def register(database_url: str, tmp_path: Path, client_id: str, *options: str) -> Path:
    """``gateway clients add`` with a generated key; returns the key file."""
    key = tmp_path / f"{client_id}.pem"
    options = options or ("--kind", "gp-practice", "--scope", "system/*.cruds")
    added = gateway_command(
        database_url,
        "clients",
        "add",
        client_id,
        "--org",
        "A81001",
        "--org-name",
        "Riverside Surgery",
        *options,
        "--generate-key",
        str(key),
    )
    assert added.returncode == 0, added.stderr
    return key


def token_for(database_url: str, client_id: str, key: Path, *options: str) -> str:
    """``gateway token``: the token alone on standard output."""
    issued = gateway_command(
        database_url, "token", "--client", client_id, "--key", str(key), *options
    )
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def _start(database_url: str, tmp_path: Path, *extra: str) -> Server:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_AUDIT_KEY": str(tmp_path / "audit-key.pem"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, base, log)
    except AssertionError:
        process.kill()
        raise
    return Server(process, base, log)


def _stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    """The server over each store, with two workers."""
    running = _start(store_url, tmp_path, "--workers", "2")
    yield running
    _stop(running)


def test_a_patient_round_trip_over_the_network(
    server: Server, store_url: str, tmp_path: Path
) -> None:
    key = register(store_url, tmp_path, "gp-system")
    token = token_for(store_url, "gp-system", key)
    with httpx.Client(
        base_url=server.base, timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        created = http.post(
            "/fhir/Patient",
            json={"resourceType": "Patient", "name": [{"family": "Begum"}]},
            headers={"Content-Type": "application/fhir+json", "X-Request-Id": "e2e-1"},
        )
        assert created.status_code == 201
        location = created.headers["location"]
        assert location.startswith(f"{server.base}/fhir/Patient/")
        read = http.get(location.removeprefix(server.base))
        assert read.status_code == 200 and read.json()["name"][0]["family"] == "Begum"
        assert http.get("/fhir/metadata").json()["fhirVersion"] == "4.0.1"
    _stop(server)
    log_lines = server.log.read_text().splitlines()
    assert any('"request_id":"e2e-1"' in line and '"status":201' in line for line in log_lines)


def test_data_and_tokens_survive_a_restart(store_url: str, tmp_path: Path) -> None:
    """The gateway's signing key is kept in the database: a token issued
    before a restart still works after it."""
    key = register(store_url, tmp_path, "gp-system")
    auth = {"Authorization": f"Bearer {token_for(store_url, 'gp-system', key)}"}
    first = _start(store_url, tmp_path)
    try:
        response = httpx.put(  # at an id of the practice's own
            f"{first.base}/fhir/Patient/A81001-kept",
            json={"resourceType": "Patient", "id": "A81001-kept"},
            headers=auth,
        )
        assert response.status_code == 201
    finally:
        _stop(first)
    second = _start(store_url, tmp_path)
    try:
        kept = httpx.get(f"{second.base}/fhir/Patient/A81001-kept", headers=auth)
        assert kept.status_code == 200
    finally:
        _stop(second)


def test_without_a_token_the_server_refuses_data_requests(store_url: str, tmp_path: Path) -> None:
    running = _start(store_url, tmp_path)
    try:
        response = httpx.get(f"{running.base}/fhir/Patient/1")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(f"{running.base}/fhir/metadata").status_code == 200
    finally:
        _stop(running)


def test_migrate_and_version_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/dir/g.db"
    first = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    from gateway.store._schema import MIGRATIONS

    assert str([m.version for m in MIGRATIONS]) in first.stdout
    again = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "up to date" in again.stdout
    version = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("gateway ")


def test_a_client_library_authenticates_over_the_network(store_url: str, tmp_path: Path) -> None:
    """A client built from PyJWT and httpx alone (nothing of the gateway's):
    discover the token endpoint, sign an assertion with the key ``gateway
    clients add`` generated, get a token and read; ``gateway token --url``
    does the same for a person with curl."""
    import uuid

    import jwt
    from cryptography.hazmat.primitives import serialization

    key_file = register(
        store_url, tmp_path, "ambulance-crew", "--kind", "ambulance", "--scope", "system/*.rs"
    )
    shown = gateway_command(store_url, "clients", "show", "ambulance-crew")
    kid = __import__("json").loads(shown.stdout)["keys"][0]["kid"]
    running = _start(store_url, tmp_path)
    try:
        config = httpx.get(f"{running.base}/fhir/.well-known/smart-configuration").json()
        token_url = config["token_endpoint"]
        private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": "ambulance-crew",
                "sub": "ambulance-crew",
                "aud": token_url,
                "exp": now + 120,
                "jti": str(uuid.uuid4()),
            },
            private_key,  # type: ignore[arg-type]
            algorithm="ES384",
            headers={"kid": kid},
        )
        answer = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
                "scope": "system/Patient.rs",
                "purpose_of_use": "ETREAT",
                "break_glass_reason": "cardiac arrest at the care home",
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["purpose_of_use"] == "ETREAT"
        auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert httpx.get(f"{running.base}/fhir/Patient", headers=auth).status_code == 200
        assert httpx.get(f"{running.base}/fhir/Observation", headers=auth).status_code == 403

        via_cli = token_for(store_url, "ambulance-crew", key_file, "--url", running.base)
        listed = httpx.get(
            f"{running.base}/fhir/Patient", headers={"Authorization": f"Bearer {via_cli}"}
        )
        assert listed.status_code == 200

        assert gateway_command(store_url, "clients", "disable", "ambulance-crew").returncode == 0
        assert httpx.get(f"{running.base}/fhir/Patient", headers=auth).status_code == 401
    finally:
        _stop(running)


def test_client_commands_fail_clearly(store_url: str, tmp_path: Path) -> None:
    key = register(store_url, tmp_path, "gp-system")

    def add(client_id: str, scope: str, key_file: str) -> subprocess.CompletedProcess[str]:
        return gateway_command(
            store_url,
            "clients",
            "add",
            client_id,
            "--org",
            "A81001",
            "--org-name",
            "x",
            "--kind",
            "gp-practice",
            "--scope",
            scope,
            "--generate-key",
            str(tmp_path / key_file),
        )

    again = add("gp-system", "system/*.rs", "k2")
    assert again.returncode != 0 and "already registered" in again.stderr
    assert not (tmp_path / "k2").exists()
    bad_scope = add("other", "patient/*.rs", "k3")
    assert bad_scope.returncode != 0 and "system scope" in bad_scope.stderr
    assert not (tmp_path / "k3").exists()
    missing = gateway_command(store_url, "token", "--client", "gp-system", "--key", "/nonexistent")
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    refused = gateway_command(
        store_url,
        "token",
        "--client",
        "gp-system",
        "--key",
        str(key),
        "--purpose",
        "ETREAT",
        "--reason",
        "x",
    )
    assert refused.returncode != 0 and "unauthorized_client" in refused.stderr
    listed = gateway_command(store_url, "clients", "list")
    assert listed.returncode == 0 and "gp-system" in listed.stdout
    rotated = gateway_command(
        store_url, "clients", "rotate-key", "gp-system", "--generate-key", str(tmp_path / "new.pem")
    )
    assert rotated.returncode == 0, rotated.stderr
    assert token_for(store_url, "gp-system", tmp_path / "new.pem")
    assert token_for(store_url, "gp-system", key)  # the old key still works until retired
