"""A benchmark's client of the running gateway: registered with a fresh key
straight in its database, then given a token at the token endpoint as any
SMART Backend Services client is."""

from __future__ import annotations

import time

import httpx


def register_and_ask_token(
    base: str,
    database_url: str,
    client_id: str,
    org_ods: str,
    org_name: str,
    kind: str,
    scopes: str,
) -> httpx.Response:
    """Register ``client_id`` (``kind``, ``scopes``) for ``org_ods`` with a
    fresh key, and ask the gateway at ``base`` for a token: its answer."""
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
