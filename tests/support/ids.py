"""Mapped ids in tests: the suite's own id key, mapping as the gateway did
before ids were keyed, and keying what was mapped so.

TEST_ID_KEY is for tests only: a deployment makes its own on first start
and keeps it in its database (``gateway.loading.ids``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mappings import identity

# A TEST key, fixed so that every store the suite makes agrees with it.
TEST_ID_KEY = b"gateway-tests-only-mapped-id-key"
assert len(TEST_ID_KEY) == identity.ID_KEY_BYTES

# A UUID of version 5: an id as the gateway mapped it before ids were keyed.
BASIS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@contextmanager
def unkeyed() -> Iterator[set[str]]:
    """Map as the gateway did before ids were keyed: every mapped id is its
    basis (a UUID v5 anyone can compute). Yields the bases made meanwhile."""
    made: set[str] = set()

    def basis_as_id(basis: str) -> str:
        made.add(basis)
        return basis

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(identity, "keyed_id", basis_as_id)
        yield made


def rekeyed(value: Any, bases: set[str]) -> Any:
    """``value`` (JSON) with every one of ``bases`` in its strings keyed with
    the key in force: what the migration makes of a store written unkeyed
    (a source's own UUIDs, of whatever version, are left as they are)."""
    if isinstance(value, str):
        return BASIS.sub(
            lambda found: (
                identity.keyed_id(found.group()) if found.group() in bases else found.group()
            ),
            value,
        )
    if isinstance(value, list):
        return [rekeyed(item, bases) for item in value]
    if isinstance(value, dict):
        return {rekeyed(key, bases): rekeyed(item, bases) for key, item in value.items()}
    return value
