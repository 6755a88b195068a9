"""The lock files `make install` and the Dockerfile install from agree with pyproject.toml.

`make install` installs requirements/dev.lock and then the project with --no-deps, so a
dependency added to pyproject.toml without `make lock` would go missing silently: these
checks catch it before anything imports it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def _pyproject() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": project["dependencies"], **project["optional-dependencies"]}


def _every_pin_hashed(lock: str) -> None:
    text = (ROOT / "requirements" / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    for entry in entries:
        if "==" in entry:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_every_dependency_of_pyproject_is_locked_within_its_range() -> None:
    locks = {"runtime": _pins("runtime.lock"), "dev": _pins("dev.lock")}
    for group, requirements in _pyproject().items():
        for line in requirements:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            for lock in ["dev", "runtime"] if group == "runtime" else ["dev"]:
                assert name in locks[lock], f"{name} is not in {lock}.lock: run make lock"
                version = locks[lock][name]
                assert requirement.specifier.contains(version, prereleases=True), (
                    f"{lock}.lock pins {name}=={version}, outside {requirement.specifier}"
                )


def test_the_runtime_lock_is_the_dev_lock_s_runtime_part() -> None:
    runtime, dev = _pins("runtime.lock"), _pins("dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_every_pin_carries_its_hashes() -> None:
    _every_pin_hashed("runtime.lock")
    _every_pin_hashed("dev.lock")
