"""Every node's document signing key, published together.

Each node signs the documents it builds with the key in its own file
(``GATEWAY_DOCUMENT_KEY``). Behind a load balancer a hospital may fetch
``/documents/jwks.json`` from one node and receive a document signed by
another, so each node writes its public key to the database when it starts
(``document_signer``) and every node publishes all of them
(``PublishedKeys``). A node started without the file makes a new key, as
before, and it is published with the others rather than failing every check
of what that node signed. A key a node no longer uses stays published: the
documents it signed still verify."""

from __future__ import annotations

import datetime
import json
import threading
import time
from pathlib import Path
from typing import Any

from gateway.documents.signature import DocumentSigner, load_or_create_document_key
from gateway.errors import StoreUnavailable
from gateway.store.base import Store

# How long a node serves the keys it last read: a key another node starts
# with is published everywhere within this; reads of the public endpoint do
# not each reach the database.
PUBLISHED_KEPT_S = 5.0


def document_signer(store: Store, path: Path) -> DocumentSigner:
    """The node's document key from ``path`` (made there on first use),
    its public key written to the database if it is not there yet."""
    signer = load_or_create_document_key(path)
    register(store, signer)
    return signer


def register(store: Store, signer: DocumentSigner) -> None:
    """Publish ``signer``'s public key with every other node's (kept if it
    is there already, with the moment it was first used)."""
    with store.unit_of_work() as uow:
        uow.execute(
            "INSERT INTO document_key (kid, jwk, first_used) VALUES (?, ?, ?) "
            "ON CONFLICT (kid) DO NOTHING",
            [
                signer.kid,
                json.dumps(signer.public_jwk(), sort_keys=True),
                datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            ],
        )


def published(store: Store) -> list[dict[str, Any]]:
    """Every node's public document key (JWKs), the first used first."""
    rows = store.select("SELECT jwk FROM document_key ORDER BY first_used, kid", [])
    return [json.loads(str(jwk)) for (jwk,) in rows]


class PublishedKeys:
    """The keys one node publishes: read from the database at most every
    ``PUBLISHED_KEPT_S``; its own key always among them, and the last keys
    read served while the database cannot be."""

    def __init__(self, store: Store, own: DocumentSigner) -> None:
        self._store = store
        self._own = own.public_jwk()
        self._keys: list[dict[str, Any]] = [self._own]
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def keys(self) -> list[dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self._read_at < PUBLISHED_KEPT_S:
                return self._keys
            try:
                found = published(self._store)
            except StoreUnavailable:  # what was last read stands
                return self._keys
            if self._own not in found:
                found.append(self._own)
            self._keys, self._read_at = found, time.monotonic()
            return self._keys
