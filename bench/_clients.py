"""A benchmark's client of the running gateway: registered with a fresh key
straight in its database, then given a token at the token endpoint as any
SMART Backend Services client is."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from gateway.auth.clients import ClientLimits


def load_limits(connections: int) -> ClientLimits:
    """The limits of a benchmark's client (docs/limits.md): its connections
    in flight, each of which may land on any one server worker, and no rate
    limit, since a closed loop sends as fast as the server answers. Limits
    are per-client configuration: a client that really sends this load is
    registered with limits that fit it, as the benchmark's is, rather than
    the defaults, which would throttle it. Twice the connections: a load
    generator replaces a connection it timed out on (wrk, on a loaded
    machine) while the server still works on that connection's request."""
    from gateway.auth.clients import ClientLimits

    return ClientLimits(concurrency=max(2 * connections, 1), rate=0)


def register_and_ask_token(
    base: str,
    database_url: str,
    client_id: str,
    org_ods: str,
    org_name: str,
    kind: str,
    scopes: str,
    limits: ClientLimits | None = None,
) -> httpx.Response:
    """Register ``client_id`` (``kind``, ``scopes``, ``limits``: by default
    the deployment's) for ``org_ods`` with a fresh key, and ask the gateway
    at ``base`` for a token: its answer."""
    from gateway.auth.clients import ClientRegistry, new_registration
    from gateway.auth.commands import client_assertion
    from gateway.auth.exchange import ASSERTION_TYPE
    from gateway.auth.keys import generate_private_key, to_jwk
    from gateway.store import open_store

    key = generate_private_key()
    jwk = to_jwk(key.public_key())
    store = open_store(database_url, pool_size=1)
    try:
        ClientRegistry(store).save(
            new_registration(
                client_id,
                org_ods=org_ods,
                org_name=org_name,
                kind=kind,
                scopes=scopes,
                keys=[jwk],
                limits=limits,
            )
        )
    finally:
        store.close()
    token_url = f"{base}/auth/token"
    return httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_id, key, token_url, jwk["kid"], int(time.time())
            ),
            "scope": scopes,
        },
        timeout=60,
    )
