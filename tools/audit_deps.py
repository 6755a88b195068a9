"""Known vulnerabilities in the locked dependencies, without passing blind.

Runs pip-audit over a lock file (`pip-audit -r LOCK --disable-pip`: every pin is exact
and hashed, so nothing is resolved again) and reads its JSON answer. pip-audit asks
PyPI's per-release JSON (`/pypi/NAME/VERSION/json`) for each pin; where that answer
cannot be had it skips the package and still says "No known vulnerabilities found"
with exit 0. This wrapper counts those skips instead of trusting the summary: for a
skipped pin that is the project's newest release it asks the project's JSON
(`/pypi/NAME/json`), whose vulnerabilities are the newest release's; any other pin
stays unaudited and is listed.

Exit status: 1 when any locked version has a known vulnerability; 2 when some pins
could not be audited (or nothing could) and `--allow-unaudited` was not given; 0 only
when every pin was audited clean, or with `--allow-unaudited` when the audited ones
were. The line `dependency audit: ...` always says how many pins were audited.

    python tools/audit_deps.py requirements/dev.lock [--allow-unaudited]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_audit(lock: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stderr)
        print(f"dependency audit FAILED: pip-audit gave no report (exit {done.returncode})")
        raise SystemExit(2) from None
    return answer


def _newest_release_vulnerabilities(name: str, version: str) -> list[str] | None:
    """The vulnerability ids of `name` at `version` if that is its newest release, else None."""
    url = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            project = json.load(answer)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
        return None
    if project.get("info", {}).get("version") != version:
        return None
    return [str(v.get("id")) for v in project.get("vulnerabilities") or []]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument(
        "--allow-unaudited",
        action="store_true",
        help="exit 0 when the pins that could be audited are clean (offline use)",
    )
    args = parser.parse_args(argv)
    pins = {_normalise(n): v for n, v in PIN.findall(args.lock.read_text())}
    report = _pip_audit(args.lock)

    vulnerable: dict[str, list[str]] = {}
    audited: set[str] = set()
    skipped: set[str] = set()
    for dependency in report.get("dependencies", []):
        name = _normalise(dependency["name"])
        if dependency.get("skip_reason"):
            skipped.add(name)
            continue
        audited.add(name)
        ids = [v["id"] for v in dependency.get("vulns", [])]
        if ids:
            vulnerable[f"{name}=={dependency.get('version')}"] = ids
    unaudited: list[str] = []
    for name in sorted(skipped):
        version = pins.get(name, "?")
        newest = _newest_release_vulnerabilities(name, version)
        if newest is None:
            unaudited.append(f"{name}=={version}")
            continue
        audited.add(name)
        if newest:
            vulnerable[f"{name}=={version}"] = newest

    for pin, ids in sorted(vulnerable.items()):
        print(f"VULNERABLE {pin}: {', '.join(ids)}")
    if unaudited:
        print("NOT AUDITED (no vulnerability answer for these releases): " + ", ".join(unaudited))
    considered = len(audited) + len(unaudited)
    print(
        f"dependency audit: {args.lock}: {considered} pins for this platform "
        f"({len(pins) - considered} more for others), {len(audited)} audited, "
        f"{len(unaudited)} not audited, {len(vulnerable)} with known vulnerabilities"
    )
    if vulnerable:
        return 1
    if not audited:
        print("dependency audit FAILED: no pin could be audited (no vulnerability service)")
        return 2
    if unaudited and not args.allow_unaudited:
        print("dependency audit FAILED: some pins were not audited (--allow-unaudited to accept)")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
