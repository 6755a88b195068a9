"""A worker's readiness answer is kept a short while from when its check
began: an answer learnt before an outage is not served long after it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.errors import Issue
from gateway.http import health


def test_an_answer_is_kept_from_when_its_check_began(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check slower than the time an answer is kept answers its own
    callers, and the next probe checks again rather than reusing it."""
    checks: list[int] = []

    async def slow_check(app: Any) -> list[Issue]:
        checks.append(1)
        await asyncio.sleep(0.3)
        return []

    monkeypatch.setattr(health, "_READY_TTL_S", 0.2)
    monkeypatch.setattr(health, "_check", slow_check)

    async def probe_twice() -> list[list[Issue]]:
        readiness = health.Readiness()
        first = await asyncio.gather(readiness.failures(None), readiness.failures(None))
        return [*first, await readiness.failures(None)]

    answers = asyncio.run(probe_twice())
    assert answers == [[], [], []]
    assert len(checks) == 2  # the two at once shared one check; the later one checked anew


def test_a_quick_check_is_reused_within_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[int] = []

    async def quick_check(app: Any) -> list[Issue]:
        checks.append(1)
        return [Issue(code="transient", diagnostics="store: a write cannot commit")]

    monkeypatch.setattr(health, "_READY_TTL_S", 60.0)
    monkeypatch.setattr(health, "_check", quick_check)

    async def probe() -> list[list[Issue]]:
        readiness = health.Readiness()
        return [await readiness.failures(None) for _ in range(3)]

    answers = asyncio.run(probe())
    assert [len(answer) for answer in answers] == [1, 1, 1]
    assert len(checks) == 1
