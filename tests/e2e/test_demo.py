"""``gateway demo`` from an empty directory: it generates a small London,
loads it through the mappings, registers the clients, prints one command per
user story and serves; each printed command, pasted into a shell, works.
A second run reuses everything and starts at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import free_port
from tests.support.serving import wait_until_ready

PEOPLE, SEED = "400", "11"


def _environment() -> dict[str, str]:
    # As on a newcomer's machine: no gateway settings, the default database
    # (var/gateway.db) in the directory the demo runs in.
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def _demo(directory: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "demo", "--people", PEOPLE, "--seed", SEED, *args]


def _serving(directory: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``gateway demo`` serving on ``port`` from ``directory``, its output in ``log``."""
    return subprocess.Popen(
        _demo(directory, "--port", str(port)),
        cwd=directory,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=_environment(),
    )


def _stories(output: str) -> dict[str, str]:
    """The printed commands, by the first word of their title."""
    found: dict[str, str] = {}
    title = ""
    for line in output.splitlines():
        if line.startswith("# ") and not line.startswith("# ("):
            title = line[2:]
        elif line.startswith("    ") and title:
            kind = title.split(":")[0]
            for detail in ("console", "reviews"):
                if detail in title:
                    kind += f"/{detail}"
            found[kind] = line.strip()
            title = ""
    return found


def _shell(command: str, directory: Path) -> str:
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _organisation(command: str) -> str:
    found = re.search(r"--client demo-(?:council|care-home)-(\w+)", command)
    assert found, command
    return found.group(1).upper()


def _document(output: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(output)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "document", output[:500]
    return bundle


def _types(bundle: dict[str, Any]) -> set[str]:
    return {entry["resource"]["resourceType"] for entry in bundle["entry"]}


def _sources(bundle: dict[str, Any]) -> set[str]:
    return {
        entry["resource"].get("meta", {}).get("source", "")
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] not in ("Composition", "Provenance", "Device")
    }


def _told(
    received: Path, process: subprocess.Popen[bytes], log: Path, seconds: float = 120
) -> dict[tuple[str, str], str]:
    """The receiver's line for each (kind of subscriber, topic) of an event
    whose signature checked, once there is one for each of the four."""
    deadline = time.monotonic() + seconds
    found: dict[tuple[str, str], str] = {}
    lines: list[str] = []
    while len(found) < 4:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "\n".join([*lines, log.read_text()])
        time.sleep(0.5)
        lines = received.read_text().splitlines() if received.exists() else []
        for line in lines:
            told = re.search(
                r"/demo-(care-home|council)-\w+  event-notification  (admission|discharge)  "
                r"event 1: Encounter/\S+  signature ok$",
                line,
            )
            if told:
                found[(told.group(1), told.group(2))] = line
    return found


def test_the_demo_from_an_empty_directory(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    started = time.monotonic()
    process = _serving(tmp_path, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        # It generates and loads London first: minutes on a loaded machine.
        wait_until_ready(process, base, log, hung_s=900)
        first_run = time.monotonic() - started
        output = log.read_text()
        assert "generating 400 people" in output
        assert re.search(r"\d+ source records were rejected, as planted", output), output
        stories = _stories(output)
        assert set(stories) == {
            "GP",
            "Council",
            "Ambulance",
            "Auditor",
            "Auditor/reviews",
            "Consent",
            "Notifications",
            "Operator",
            "Population health",
            "Auditor/console",
        }, output

        gp = _document(_shell(stories["GP"], tmp_path))
        # The GP reads more than its own record: the hospital's stay too.
        assert {"urn:ods:R9D"} <= _sources(gp), _sources(gp)
        assert "Encounter" in _types(gp)

        council = _document(_shell(stories["Council"], tmp_path))
        assert "EpisodeOfCare" in _types(council)

        red_bag = _document(_shell(stories["Ambulance"], tmp_path))
        flags = [e["resource"] for e in red_bag["entry"] if e["resource"]["resourceType"] == "Flag"]
        assert any("not for" in json.dumps(flag).lower() for flag in flags), flags
        assert "urn:ods:V9" in " ".join(_sources(red_bag))  # the care home's record

        report = json.loads(_shell(stories["Auditor"], tmp_path))
        assert report["resourceType"] == "Parameters"
        emergency = [
            p
            for p in report["parameter"]
            if p["name"] == "organizationSummary"
            and {"name": "organization", "valueString": "R9A"} in p["part"]
        ]
        assert (
            emergency and {"name": "emergencyAccesses", "valueInteger": 1} in emergency[0]["part"]
        ), report

        waiting = json.loads(_shell(stories["Auditor/reviews"], tmp_path))["pending"]
        assert [item["organization"] for item in waiting] == ["R9A"], waiting
        assert waiting[0]["reason"] == "999 call: resident fallen at the care home"

        # The person refused the shared record: the asker's own record and
        # nothing else, though the GP and others hold more.
        dissented = _document(_shell(stories["Consent"], tmp_path))
        assert _sources(dissented) == {"urn:ods:" + _organisation(stories["Consent"])}

        # A care home and a council subscribed once the gateway served, and
        # were each told of the admission and the discharge, signed.
        received = tmp_path / "var" / "demo" / "notifications.log"
        told = _told(received, process, log)
        assert set(told) == {
            (subscriber, topic)
            for subscriber in ("care-home", "council")
            for topic in ("admission", "discharge")
        }, told
        tail = _shell(stories["Notifications"], tmp_path)
        assert all(line in tail for line in told.values()), tail
        listed = _shell(stories["Operator"], tmp_path).splitlines()[1:]
        assert len(listed) == 4 and all(" active " in line for line in listed), listed

        # The ICB exports everyone, pseudonymised, and lists the pilot's cohort.
        analysed = _shell(stories["Population health"], tmp_path)
        assert re.search(r"[\d,]+ resources in \d+ files under", analysed), analysed
        assert re.search(r"\d+ people in \d+ practices", analysed), analysed
        exported = (tmp_path / "var" / "demo" / "export" / "Patient-1.ndjson").read_text()
        assert '"PSEUDED"' in exported and "nhs-number" not in exported

        link = _shell(stories["Auditor/console"], tmp_path).strip()
        assert link.startswith(f"{base}/console/login?token=")
        signed_in = httpx.get(link, follow_redirects=False, timeout=10)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console"
    finally:
        process.terminate()
        process.wait(timeout=20)

    # Everything is in place: the second run only checks, and is quick.
    again = time.monotonic()
    rerun = subprocess.run(
        _demo(tmp_path, "--no-serve"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(),
    )
    took = time.monotonic() - again
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "generating" not in rerun.stdout and "loading" not in rerun.stdout, rerun.stdout
    assert set(_stories(rerun.stdout)) == set(stories)
    assert took < max(10.0, first_run / 4), (took, first_run)

    # Served again, its subscribers subscribe again to the receiver's new
    # port: their own Subscriptions changed, no others added beside them.
    log = tmp_path / "again.log"
    process = _serving(tmp_path, port, log)
    try:
        deadline = time.monotonic() + 120
        while (
            log.read_text().count("  handshake  ") < 4
            or "discharge was loaded on an earlier run" not in log.read_text()
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        time.sleep(1)  # were anything else sent, it would be by now
        assert log.read_text().count("notification received:") == 4, log.read_text()
        listed = _shell(stories["Operator"], tmp_path).splitlines()[1:]
        assert len(listed) == 4, listed
    finally:
        process.terminate()
        process.wait(timeout=20)
