"""The demo's subscribers' endpoint: a small HTTP server on loopback that
takes the gateway's notifications as a care home's or a council's system
would, checks each one's signature and writes a line per notification to a
file (and the demo's output).

The check is the one any receiver makes with the gateway's public keys
alone: ``X-Signature`` is a detached JWS (RFC 7515 appendix F), EdDSA
(RFC 8037), over the exact body, by a key in the JWKS the gateway serves at
``/documents/jwks.json``. A notification whose signature does not check is
refused (401), so the gateway tries again and, in the end, says so in
``gateway subscriptions list``; it is never taken as delivered.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.notifications.topics import PREFIX

_MOST = 16 * 1024 * 1024  # the largest notification taken: a full-resource Bundle of 100 events


class BadSignature(ValueError):
    """Why a notification's signature does not check."""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Keys:
    """The gateway's public keys, by ``kid``, fetched from its JWKS when a
    signature names one not seen yet (the gateway may have a new key)."""

    def __init__(self, jwks_url: str) -> None:
        self._url = jwks_url
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._lock = threading.Lock()

    def get(self, kid: str) -> Ed25519PublicKey | None:
        with self._lock:
            if kid not in self._keys:
                try:
                    answer = httpx.get(self._url, timeout=10)
                    answer.raise_for_status()
                    self._keys = _ed25519_keys(answer.json())
                except (httpx.HTTPError, ValueError):
                    return None
            return self._keys.get(kid)


def _ed25519_keys(jwks: Any) -> dict[str, Ed25519PublicKey]:
    found = {}
    for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
            found[str(jwk["kid"])] = Ed25519PublicKey.from_public_bytes(_b64url(str(jwk["x"])))
    return found


def verify(signature: str, body: bytes, keys: Callable[[str], Ed25519PublicKey | None]) -> str:
    """Check ``signature`` (``X-Signature``) over ``body``; the signing
    key's ``kid``, or ``BadSignature`` saying what is wrong."""
    if signature.count(".") != 2:
        raise BadSignature("not a detached JWS (header..signature)")
    protected, payload, signed = signature.split(".")
    if payload:
        raise BadSignature("not a detached JWS: it carries its payload")
    try:
        header = json.loads(_b64url(protected))
        raw = _b64url(signed)
    except ValueError:
        raise BadSignature("its parts are not base64url") from None
    if not isinstance(header, dict) or header.get("alg") != "EdDSA":
        raise BadSignature("not signed with EdDSA")
    kid = str(header.get("kid", ""))
    public = keys(kid)
    if public is None:
        raise BadSignature(f"signed by key {kid!r}, which the gateway does not serve")
    try:
        public.verify(raw, f"{protected}.{_unpadded(body)}".encode("ascii"))
    except InvalidSignature:
        raise BadSignature("it does not match the body") from None
    return kid


@dataclass(frozen=True)
class Notification:
    """What one notification said: for whom (the endpoint's path), its
    type, topic, event numbers and their focus."""

    path: str
    kind: str
    topic: str
    numbers: tuple[str, ...]
    focus: tuple[str, ...]

    def line(self, when: str, verdict: str) -> str:
        said = [when, self.path, self.kind, self.topic]
        if self.numbers:
            events = "event" if len(self.numbers) == 1 else "events"
            said.append(f"{events} {', '.join(self.numbers)}: {' '.join(self.focus) or '-'}")
        return "  ".join([*said, verdict])


def read(path: str, body: bytes) -> Notification:
    """The notification Bundle ``body`` (a SubscriptionStatus first)."""
    bundle = json.loads(body)
    status = bundle["entry"][0]["resource"]
    values: dict[str, Any] = {}
    numbers: list[str] = []
    focus: list[str] = []
    for parameter in status.get("parameter", []):
        if parameter.get("name") == "notification-event":
            parts = {p.get("name"): p for p in parameter.get("part", [])}
            numbers.append(str(parts.get("event-number", {}).get("valueString", "?")))
            if "focus" in parts:
                focus.append(str(parts["focus"]["valueReference"]["reference"]))
        else:
            name = parameter.get("name")
            values[name] = next((v for k, v in parameter.items() if k.startswith("value")), None)
    topic = str(values.get("topic") or "?").removeprefix(PREFIX)
    return Notification(path, str(values.get("type")), topic, tuple(numbers), tuple(focus))


class Receiver:
    """Listens on 127.0.0.1 (an unused port) until ``stop``; each
    notification is a line in ``log_file`` and said with ``say``."""

    def __init__(
        self,
        log_file: Path,
        jwks_url: str,
        say: Callable[[str], None] = print,
        *,
        keys: Callable[[str], Ed25519PublicKey | None] | None = None,
    ) -> None:
        self.log_file = log_file
        # The gateway's keys by kid (``keys``: a test's own).
        self._keys = keys or Keys(jwks_url).get
        self._say = say
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[Notification]:
        """What was taken (its signature checked), in order."""
        with self._lock:
            return list(self._received)

    def take(self, path: str, body: bytes, signature: str | None) -> int:
        """Check and record one notification; the HTTP status to answer."""
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            notification = read(path, body)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self._write(f"{when}  {path}  not a notification Bundle: refused")
            return 400
        try:
            verify(signature or "", body, self._keys)
        except BadSignature as exc:
            self._write(notification.line(when, f"signature BAD ({exc}): refused"))
            return 401
        with self._lock:
            self._received.append(notification)
        self._write(notification.line(when, "signature ok"))
        return 200

    def _write(self, line: str) -> None:
        with self._lock, self.log_file.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        self._say(f"notification received: {line}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= _MOST:
                    status = 413 if length > _MOST else 400
                else:
                    body = self.rfile.read(length)
                    status = receiver.take(self.path, body, self.headers.get("X-Signature"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # each notification is said once, by ``take``

        return Handler
