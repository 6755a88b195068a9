"""Fixtures shared by the whole suite.

Storage and API tests take the ``store`` fixture, which runs each of them once
on SQLite and once on a real PostgreSQL server: a throwaway cluster the session
starts itself. Where PostgreSQL cannot start the PostgreSQL runs are skipped,
except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.config import Settings
from gateway.http.app import create_app
from gateway.store import Store, open_store
from tests.support.postgres import Cluster, ClusterUnavailable, start_cluster

BASE_URL = "http://testserver/fhir"
_TABLES = "resource_version, resource_current, search_token"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cluster = start_cluster()
    except (ClusterUnavailable, OSError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL could not start: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_store(pg_cluster: Cluster) -> Iterator[Store]:
    """One migrated PostgreSQL database for the session, emptied per test."""
    store = open_store(pg_cluster.create_database("gateway_test"))
    store.migrate()
    yield store
    store.close()


def _empty_postgres(store: Store) -> None:
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty, unmigrated database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/gateway.db"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{os.getpid()}_{abs(hash(request.node.nodeid))}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store of each kind."""
    if request.param == "sqlite":
        sqlite = open_store(f"sqlite:///{tmp_path}/gateway.db")
        sqlite.migrate()
        yield sqlite
        sqlite.close()
        return
    postgres: Store = request.getfixturevalue("pg_store")
    _empty_postgres(postgres)
    yield postgres


def make_client(store: Store, **settings: object) -> TestClient:
    options: dict[str, object] = {"insecure_no_auth": True, "base_url": BASE_URL}
    options.update(settings)
    app = create_app(Settings(**options), store)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    """The API over each store, with the development no-auth switch on."""
    with make_client(store) as test_client:
        yield test_client
