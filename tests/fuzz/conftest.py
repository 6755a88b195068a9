"""The fuzzing tests' settings and what they share.

``GATEWAY_FUZZ`` picks the hypothesis profile: ``ci`` (the default, what
``make test`` runs) is bounded and derandomised, so a pass takes the same
examples every time and cannot flake; ``long`` (``make fuzz``) takes many
times as many, random ones, remembered in ``var/fuzz/hypothesis`` so that
a failure found once is tried first next time. Both run on SQLite and
PostgreSQL (the suite's `store` fixture), the bounded pass with fewer examples
on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from starlette.testclient import TestClient

from gateway.config import Settings
from gateway.store import Store
from tests.conftest import make_client

ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("GATEWAY_FUZZ", "ci")
LONG = PROFILE == "long"
# How many times as many examples the long profile tries.
LONG_FACTOR = int(os.environ.get("GATEWAY_FUZZ_FACTOR", "20"))

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
settings.register_profile(
    "long",
    parent=settings.get_profile("ci"),
    derandomize=False,
    database=DirectoryBasedExampleDatabase(str(ROOT / "var" / "fuzz" / "hypothesis")),
)


def examples(count: int, store: Store | None = None) -> settings:
    """The profile's settings, with ``count`` examples in the bounded pass
    (a quarter of them on PostgreSQL, which a NUL in text sets apart)."""
    if LONG:
        count *= LONG_FACTOR
    elif store is not None and store.dialect == "postgres":
        count = max(count // 4, 10)
    return settings(settings.get_profile(PROFILE), max_examples=count)


# Limits meant for a client's real traffic, raised so that the fuzzer's
# thousands of requests reach the code under test rather than a 429 (the
# limits have their own tests); settings this tree does not have are left out.
_UNLIMITED = {
    "not_found_floor_ms": 0,
    "client_rate": 0.0,
    "client_burst": 0,
    "client_concurrency": 0,
    "token_failures_burst": 1_000_000,
    "token_failures_per_minute": 1_000_000.0,
}


def fuzz_client(store: Store, token: str | None = "", **options: Any) -> TestClient:
    """``make_client``'s client (``token`` as it takes it), the limits raised."""
    names = {f.name for f in dataclasses.fields(Settings)}
    chosen = {k: v for k, v in {**_UNLIMITED, **options}.items() if k in names}
    return make_client(store, token=token, **chosen)


# What a write changes: a request refused must leave every one unchanged.
WRITTEN_TABLES = (
    "resource_version",
    "resource_current",
    "search_token",
    "search_string",
    "search_date",
    "search_reference",
    "search_quantity",
    "search_number",
    "search_uri",
    "search_composite",
    "search_sort",
    "patient_element_source",
    "notification_event",
    "subscription_state",
)


def digest(store: Store) -> tuple[int, ...]:
    """The rows of each table a write changes, and the last version's
    sequence number: equal before and after a request that wrote nothing."""
    counts = [int(store.select(f"SELECT COUNT(*) FROM {t}", [])[0][0]) for t in WRITTEN_TABLES]  # type: ignore[call-overload]
    last = store.select("SELECT COALESCE(MAX(seq), 0) FROM resource_version", [])[0][0]
    return (*counts, int(last))  # type: ignore[call-overload]
