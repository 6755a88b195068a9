"""``gateway documents verify FILE``: check a document's signature, as a
hospital that received it would, with the keys the gateway publishes (every
node's, from its database) or a key given."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.config import Settings
from gateway.documents.keys import published
from gateway.documents.signature import BadSignature, public_jwk, verify
from gateway.errors import StoreUnavailable
from gateway.keyfiles import load_or_create_ed25519
from gateway.store import open_store

NOT_VERIFIED = 1
UNUSABLE_INPUT = 2


class _Unusable(Exception):
    """An input that cannot be read or parsed (exit 2)."""


def add_commands(commands: Any) -> None:
    documents = commands.add_parser("documents", help="the FHIR documents the gateway signs")
    actions = documents.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "verify",
        help="check a document's Bundle.signature; exit 1 saying what is wrong",
    )
    check.add_argument("file", metavar="FILE", type=Path, help="the document (JSON Bundle)")
    check.add_argument(
        "--key",
        metavar="JWKS_OR_PEM_FILE",
        type=Path,
        help="the signer's public key: a JWKS (as /documents/jwks.json serves), a JWK or a "
        "PEM (default: every node's key the database publishes, and this node's own)",
    )
    check.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    documents.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        document = _read_document(args.file)
        keys = _read_keys(args.key) if args.key else _gateways_keys(args)
    except _Unusable as exc:
        print(f"gateway documents verify: {exc}", file=sys.stderr)
        return UNUSABLE_INPUT
    try:
        verified = verify(document, keys)
    except BadSignature as exc:
        print(f"NOT verified: {exc}", file=sys.stderr)
        return NOT_VERIFIED
    print(f"verified: signed by {verified.kid} at {verified.when}")
    return 0


def _read_document(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise _Unusable(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _Unusable(f"{path} is not JSON: {exc}") from None


def _read_keys(path: Path) -> list[dict[str, Any]]:
    """The keys a file holds: a JWKS, one JWK, or a PEM Ed25519 key (public,
    or the private key file itself, of which only the public half is used)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unusable(f"cannot read the key file {path}: {exc}") from None
    if text.startswith("-----BEGIN"):
        try:
            if "PRIVATE KEY" in text:
                loaded: object = serialization.load_pem_private_key(text.encode(), password=None)
            else:
                loaded = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise _Unusable(f"{path} is not a PEM key: {exc}") from None
        if isinstance(loaded, Ed25519PrivateKey):
            loaded = loaded.public_key()
        if not isinstance(loaded, Ed25519PublicKey):
            raise _Unusable(f"{path} holds a {type(loaded).__name__}; documents are signed Ed25519")
        return [public_jwk(loaded)]
    try:
        document = json.loads(text)
    except ValueError:
        raise _Unusable(f"{path} is neither a PEM key nor a JWK or JWKS (JSON)") from None
    found = (
        document.get("keys") if isinstance(document, dict) and "keys" in document else [document]
    )
    if not isinstance(found, list) or not all(isinstance(jwk, dict) for jwk in found):
        raise _Unusable(f"{path} is not a JWKS: its keys are not a list of JSON objects")
    return found


def _gateways_keys(args: argparse.Namespace) -> list[dict[str, Any]]:
    """What ``/documents/jwks.json`` would serve: every node's key the
    database publishes, and this node's own key file (read, never made)."""
    env = dict(os.environ)
    if args.database_url:
        env["GATEWAY_DATABASE_URL"] = args.database_url
    settings = Settings.from_env(env)
    keys = _published(settings.database_url)
    path = Path(settings.document_key_path())
    if path.exists():
        try:
            own = public_jwk(load_or_create_ed25519(path).public_key())
        except (ValueError, OSError) as exc:  # NotAnEd25519Key is a ValueError
            raise _Unusable(f"the document key {path} cannot be used: {exc}") from None
        keys += [] if own in keys else [own]
    if not keys:
        raise _Unusable(
            f"no --key given, the gateway has no document key at {path} "
            "(GATEWAY_DOCUMENT_KEY) and its database publishes none"
        )
    return keys


def _published(database_url: str) -> list[dict[str, Any]]:
    """The keys the database publishes; none from a SQLite database that is
    not there (it is not made to look) or one the gateway has not reached."""
    if (
        database_url.startswith("sqlite:///")
        and not Path(database_url.removeprefix("sqlite:///")).exists()
    ):
        return []
    try:
        store = open_store(database_url, pool_size=1)
    except StoreUnavailable:
        return []
    try:
        store.migrate()  # as ``gateway audit verify``: a store of an older release
        return published(store)
    except StoreUnavailable:
        return []
    finally:
        store.close()
