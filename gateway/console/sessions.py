"""Who is using the console: one-time login links minted by ``gateway
console login-link`` for an auditor client, exchanged for a short session
cookie (HttpOnly, SameSite=Strict) that is signed, not stored; every form
carries a CSRF token bound to the session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from gateway.auth.clients import ClientRegistry, OrgKind
from gateway.store import Store
from gateway.store.secrets import kept_secret

LINK_LIFETIME_S = 600
SESSION_LIFETIME_S = 30 * 60
_KEY_NAME = "console-session-key"


class NotAllowed(Exception):
    """A link, session or form that cannot be used."""


@dataclass(frozen=True)
class Session:
    session_id: str
    client_id: str
    client_name: str
    org_ods: str
    org_name: str
    expires_at: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_key(store: Store) -> bytes:
    """The key sessions are signed with, made on first use and shared by
    every worker of every node."""
    return bytes.fromhex(kept_secret(store, _KEY_NAME, lambda: secrets.token_hex(32)))


def mint_login_link(store: Store, client_id: str, now: int | None = None) -> str:
    """A one-time secret for an enabled auditor client, valid 10 minutes."""
    client = ClientRegistry(store).get(client_id)
    if client is None or client.disabled:
        raise NotAllowed(f"no enabled client {client_id!r}")
    if client.kind is not OrgKind.AUDITOR:
        raise NotAllowed(f"{client_id!r} is not an auditor's client: the console is for auditors")
    secret = secrets.token_urlsafe(32)
    with store.unit_of_work() as uow:
        uow.execute(
            "INSERT INTO console_login (token_hash, client_id, expires_at, used) "
            "VALUES (?, ?, ?, ?)",
            [_hash(secret), client_id, (now or int(time.time())) + LINK_LIFETIME_S, False],
        )
    return secret


def redeem(store: Store, secret: str, now: int | None = None) -> Session:
    """The session a login link opens; the link is spent."""
    now = now or int(time.time())
    with store.unit_of_work() as uow:
        rows = uow.select(
            "SELECT client_id, expires_at, used FROM console_login WHERE token_hash = ?",
            [_hash(secret)],
        )
        if not rows or rows[0][2] or int(str(rows[0][1])) < now:
            raise NotAllowed("this login link is unknown, used or expired: ask for a new one")
        uow.execute("UPDATE console_login SET used = ? WHERE token_hash = ?", [True, _hash(secret)])
    client = ClientRegistry(store).get(str(rows[0][0]))
    if client is None or client.disabled or client.kind is not OrgKind.AUDITOR:
        raise NotAllowed("the client this link was made for can no longer use the console")
    return Session(
        secrets.token_hex(16),
        client.client_id,
        client.name,
        client.org_ods,
        client.org_name,
        now + SESSION_LIFETIME_S,
    )


def _sign(key: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def cookie_value(key: bytes, session: Session) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(session.__dict__).encode())
    return f"{payload.decode()}.{_sign(key, payload)}"


def open_cookie(store: Store, key: bytes, value: str | None, now: int | None = None) -> Session:
    """The session a cookie holds, if it is genuine, unexpired and its client
    still an enabled auditor."""
    if not value or "." not in value:
        raise NotAllowed("not signed in")
    payload, _, signature = value.rpartition(".")
    if not hmac.compare_digest(_sign(key, payload.encode()), signature):
        raise NotAllowed("not signed in")
    try:
        session = Session(**json.loads(base64.urlsafe_b64decode(payload)))
    except (ValueError, TypeError):
        raise NotAllowed("not signed in") from None
    if session.expires_at < (now or int(time.time())):
        raise NotAllowed("the session has expired: sign in again")
    client = ClientRegistry(store).get(session.client_id)
    if client is None or client.disabled:
        raise NotAllowed("this client can no longer use the console")
    return session


def csrf_token(key: bytes, session: Session) -> str:
    return _sign(key, f"csrf:{session.session_id}".encode())


def check_csrf(key: bytes, session: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(csrf_token(key, session), token):
        raise NotAllowed("the form is stale or forged (CSRF check failed): reload the page")
