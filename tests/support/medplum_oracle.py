"""Medplum's FHIR R4 validator (npm ``@medplum/core``), run under node as an
independent oracle for the gateway's validator (docs/validation-oracle.md).

The packages are pinned by ``tests/support/medplum/package.json`` and its
lockfile, and installed on first use with ``npm ci`` into a cache directory
outside the source tree: ``medplum-<hash of the manifests>`` under
``$MEDPLUM_ORACLE_CACHE`` if set, otherwise under ``$XDG_CACHE_HOME`` (or
``~/.cache``) ``/london-care-gateway``. A later run with the same pins reuses
it. One node process judges every resource given
(``tests/support/medplum/validate.mjs``).

Where node or npm is missing, too old, or the packages cannot be installed
(no network), ``Unavailable`` says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELPER = Path(__file__).resolve().parent / "medplum"
SCRIPT = HELPER / "validate.mjs"
_MANIFESTS = ("package.json", "package-lock.json")
# What @medplum/core needs of node: its declared engines are ^22.18 || >=24.2,
# and before 22 it runs with the WebSocket global behind a flag (20.10 on).
_OLDEST_NODE = (20, 10)
_WEBSOCKET_BY_DEFAULT = 22
# No install scripts (neither package has any), no peer dependencies (pdfmake,
# optional: PDFs), and a quick failure where the registry cannot be reached.
_NPM_CI_FLAGS = (
    "--omit=peer",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--fetch-retries=1",
    "--fetch-timeout=30000",
    "--loglevel=error",
)
_INSTALL_SECONDS = 300
_RUN_SECONDS = 300


class Unavailable(Exception):
    """Medplum's validator cannot be run here; the message says why."""


@dataclass(frozen=True)
class Issue:
    severity: str
    code: str
    expression: str
    text: str


@dataclass(frozen=True)
class Verdict:
    """Medplum's verdict on one resource. ``valid`` is ``None`` when its
    validator threw something other than an OperationOutcome (``crash``)."""

    valid: bool | None
    issues: tuple[Issue, ...]
    crash: str = ""

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity in ("error", "fatal")]


def _pinned() -> dict[str, str]:
    manifest = json.loads((HELPER / "package.json").read_text("utf-8"))
    dependencies: dict[str, str] = manifest["dependencies"]
    return dependencies


def _lock_hash() -> str:
    digest = hashlib.sha256()
    for name in _MANIFESTS:
        digest.update((HELPER / name).read_bytes())
    return digest.hexdigest()[:12]


def install_dir() -> Path:
    """Where the pinned packages are (or will be) installed."""
    root = os.environ.get("MEDPLUM_ORACLE_CACHE")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache) / "london-care-gateway")
    return Path(root) / f"medplum-{_lock_hash()}"


def _installed(directory: Path) -> bool:
    for name, version in _pinned().items():
        manifest = directory / "node_modules" / name / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text("utf-8")).get("version") != version:
            return False
    return True


def node_command() -> list[str]:
    """``node`` with the flags @medplum/core needs on this version of it."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("node is not installed (Medplum's validator runs under node)")
    done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    found = re.match(r"v(\d+)\.(\d+)", done.stdout.strip())
    if found is None:
        raise Unavailable(f"cannot tell node's version from {done.stdout.strip()!r}")
    version = (int(found.group(1)), int(found.group(2)))
    if version < _OLDEST_NODE:
        raise Unavailable(f"node {done.stdout.strip()} is too old for @medplum/core (20.10 on)")
    if version[0] < _WEBSOCKET_BY_DEFAULT:
        return [node, "--experimental-websocket"]
    return [node]


def install() -> Path:
    """The directory whose ``node_modules`` holds the pinned packages,
    installed there first if they are not yet."""
    directory = install_dir()
    if _installed(directory):
        return directory
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (it installs Medplum's validator)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Installed beside the target and moved into place whole, so that an
    # interrupted install is never taken for a finished one.
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for name in _MANIFESTS:
            shutil.copyfile(HELPER / name, staging / name)
        try:
            done = subprocess.run(
                [npm, "ci", *_NPM_CI_FLAGS],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=_INSTALL_SECONDS,
            )
        except subprocess.TimeoutExpired as timeout:
            raise Unavailable(
                f"npm ci of {', '.join(_pinned())} took over {_INSTALL_SECONDS} s"
            ) from timeout
        if done.returncode != 0:
            said = [line.removeprefix("npm error").strip() for line in done.stderr.splitlines()]
            why = "; ".join(line for line in said if line)[:300]
            raise Unavailable(f"npm could not install {', '.join(_pinned())}: {why}")
        # Already there: another run's install, or something that is not ours.
        with contextlib.suppress(OSError):
            staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _installed(directory):
        raise Unavailable(f"{directory} is in the way of the install: remove it")
    return directory


def validate(resources: Sequence[dict[str, Any]]) -> list[Verdict]:
    """Medplum's verdict on each resource, in order, from one node process."""
    command = [*node_command(), str(SCRIPT), str(install())]
    lines = "".join(json.dumps(resource) + "\n" for resource in resources)
    done = subprocess.run(
        command, input=lines, capture_output=True, text=True, timeout=_RUN_SECONDS
    )
    if done.returncode != 0:
        raise RuntimeError(f"Medplum's validator failed ({done.returncode}): {done.stderr}")
    verdicts = []
    for line in done.stdout.splitlines():
        found = json.loads(line)
        verdicts.append(
            Verdict(
                found["valid"],
                tuple(Issue(**issue) for issue in found["issues"]),
                found.get("crash", ""),
            )
        )
    if len(verdicts) != len(resources):
        raise RuntimeError(f"{len(resources)} resources given, {len(verdicts)} verdicts")
    return verdicts
