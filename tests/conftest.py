"""Fixtures shared by the whole suite.

Storage and API tests take the ``store`` fixture, which runs each of them once
on SQLite and once on a real PostgreSQL server: a throwaway cluster the session
starts itself. Where PostgreSQL cannot start the PostgreSQL runs are skipped,
except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.auth.clients import ClientRegistry, new_registration
from gateway.auth.keys import generate_private_key, to_jwk
from gateway.auth.scopes import Scopes
from gateway.auth.tokens import Purpose, TokenService, signing_key
from gateway.config import Settings
from gateway.http.app import create_app
from gateway.loading.ids import SECRET_NAME as ID_KEY_SECRET
from gateway.loading.ids import id_key
from gateway.store import Store, open_store
from mappings.identity import use_id_key
from tests.support.ids import TEST_ID_KEY
from tests.support.postgres import Cluster, ClusterUnavailable, start_cluster

BASE_URL = "http://testserver/fhir"
# Kept between tests: the schema's own record, and the gateway's keys.
_KEPT_TABLES = ("schema_migration", "gateway_secret")
# The audit log's signing key for tests: a test key made on first use, outside the tree.
_TEST_AUDIT_KEY = os.path.join(tempfile.gettempdir(), f"gateway-test-audit-key-{os.getpid()}.pem")
# And the documents' signing key, likewise.
TEST_DOCUMENT_KEY = os.path.join(
    tempfile.gettempdir(), f"gateway-test-document-key-{os.getpid()}.pem"
)


def _remove_test_keys() -> None:
    for path in (_TEST_AUDIT_KEY, TEST_DOCUMENT_KEY):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# Made per process (tests, or a benchmark borrowing their fixtures): gone with it.
atexit.register(_remove_test_keys)

# Mapped ids are keyed with the TEST key from the start: tests compute
# expected ids at import. Every store the `store` fixture gives keeps the
# same key, so an app over it (which puts its store's key in force) agrees.
use_id_key(TEST_ID_KEY)


@pytest.fixture(autouse=True)
def _test_id_key() -> Iterator[None]:
    """Each test starts and ends with the TEST key in force, whatever store
    an app or a command it ran put in force."""
    use_id_key(TEST_ID_KEY)
    yield
    use_id_key(TEST_ID_KEY)


def keep_test_id_key(store: Store) -> None:
    """Give a new store the TEST key as its key for mapped ids."""
    with store.unit_of_work() as uow:
        uow.execute(
            "INSERT INTO gateway_secret (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            [ID_KEY_SECRET, TEST_ID_KEY.hex()],
        )
    assert id_key(store) == TEST_ID_KEY


# The client every API test calls as, unless it asks for another.
TEST_CLIENT = "test-system"
TEST_ORG = "A81001"


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
    keep_test_id_key(store)
    yield store
    store.close()


def _empty_postgres(store: Store) -> None:
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            if row[0] not in _KEPT_TABLES
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")


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
        keep_test_id_key(sqlite)
        yield sqlite
        sqlite.close()
        return
    postgres: Store = request.getfixturevalue("pg_store")
    _empty_postgres(postgres)
    yield postgres


def access_token(
    store: Store,
    *,
    client_id: str = TEST_CLIENT,
    scopes: str = "system/*.cruds",
    kind: str = "gp-practice",
    org: str = TEST_ORG,
    purpose: Purpose = Purpose.TREAT,
    reason: str | None = None,
) -> str:
    """A token for a client registered (or re-registered) in ``store`` as
    asked, issued as the token endpoint would issue it."""
    registration = new_registration(
        client_id,
        org_ods=org,
        org_name=f"Organisation {org}",
        kind=kind,
        scopes=scopes,
        keys=[to_jwk(generate_private_key().public_key())],
    )
    ClientRegistry(store).save(registration)
    service = TokenService(signing_key(store), lifetime_s=300)
    token, _ = service.issue(
        registration, Scopes.parse(scopes), purpose, reason, now=int(time.time())
    )
    return token


def make_client(store: Store, *, token: str | None = "", **settings: object) -> TestClient:
    """The API over ``store``, calling with ``token`` (by default one for a
    client allowed everything; ``None``: no Authorization header)."""
    options: dict[str, object] = {
        "base_url": BASE_URL,
        "audit_key": _TEST_AUDIT_KEY,
        "document_key": TEST_DOCUMENT_KEY,
        # Tests that deliver notifications run the worker's passes themselves.
        "notify": False,
    }
    options.update(settings)
    app = create_app(Settings(**options), store)  # type: ignore[arg-type]
    if token == "":
        token = access_token(store)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return TestClient(app, raise_server_exceptions=False, headers=headers)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    """The API over each store, as a client whose token allows everything."""
    with make_client(store) as test_client:
        yield test_client
