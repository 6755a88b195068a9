"""Signed tree heads as checkpoints in the C2SP signed-note format
(https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md), Ed25519 keys.

A checkpoint is the text ``<origin>\\n<size>\\n<base64 root hash>\\n``
followed by a blank line and one signature line per signer:
``— <key name> <base64(4-byte key id || 64-byte signature)>``. The key id is
the first four bytes of ``SHA-256(<key name> || 0x0A || 0x01 || public key)``.
Anyone with the published verifier key (``<name>+<hex key id>+<base64(0x01 ||
public key)>``) can check a checkpoint without trusting the gateway.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.keyfiles import NotAnEd25519Key, load_or_create_ed25519

ORIGIN = "london-care-gateway/audit"
_ED25519 = b"\x01"
_DASH = "\u2014"


class BadCheckpoint(ValueError):
    """A checkpoint that does not parse or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Signer:
    name: str
    key: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.key.public_key()

    def verifier_key(self) -> str:
        """The published form of the public key (a C2SP vkey)."""
        raw = _raw(self.public)
        return (
            f"{self.name}+{_key_id(self.name, raw).hex()}+"
            f"{base64.b64encode(_ED25519 + raw).decode()}"
        )

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note of ``checkpoint``."""
        body = checkpoint.body()
        signature = self.key.sign(body.encode())
        stamp = base64.b64encode(_key_id(self.name, _raw(self.public)) + signature).decode()
        return f"{body}\n{_DASH} {self.name} {stamp}\n"


def parse_verifier_key(vkey: str) -> tuple[str, Ed25519PublicKey]:
    try:
        name, key_id, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        if raw[:1] != _ED25519 or len(raw) != 33 or _key_id(name, raw[1:]).hex() != key_id:
            raise ValueError("not an Ed25519 verifier key")
        return name, Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError as exc:
        raise BadCheckpoint(f"verifier key: {exc}") from None


def open_note(note: str, vkey: str) -> Checkpoint:
    """The checkpoint a signed note holds, if ``vkey``'s signer signed it."""
    name, public = parse_verifier_key(vkey)
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise BadCheckpoint("a checkpoint has its text, a blank line, then signatures")
    body += "\n"
    lines = body.split("\n")
    try:
        origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError):
        raise BadCheckpoint("the checkpoint text is not origin, size, root hash") from None
    if size < 0 or len(root) != 32:
        raise BadCheckpoint("the checkpoint's size or root hash is malformed")
    expected_id = _key_id(name, _raw(public))
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != name:
            continue
        try:
            stamp = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if stamp[:4] != expected_id:
            continue
        try:
            public.verify(stamp[4:], body.encode())
        except InvalidSignature:
            raise BadCheckpoint(f"the signature of {name} does not verify") from None
        return Checkpoint(origin, size, root)
    raise BadCheckpoint(f"no signature by {name}")


class NotTheLogsKey(BadCheckpoint):
    """A signing key that cannot sign on a log already signed by another:
    missing where the log's checkpoints say one was in use, or not the key
    that signed them."""


def signer_of_log(path: Path, latest: str | None, name: str = ORIGIN) -> Signer:
    """The signing key of a log whose latest signed checkpoint is ``latest``
    (``None``: none signed yet), from ``path``. Made there only for a log no
    key has signed: otherwise a node started without the shared key file
    would sign with a key of its own, checkpoints no verifier holding the
    published key could check, in the one log every node appends to."""
    if latest is not None and not path.exists():
        raise NotTheLogsKey(
            f"the audit signing key {path} does not exist, but this audit log's checkpoints "
            "are signed: give every node the key file that signed them (GATEWAY_AUDIT_KEY) "
            "rather than a new key"
        )
    signer = load_or_create_signer(path, name)
    check_signs_log(signer, latest, f"the audit signing key {path}")
    return signer


def check_signs_log(signer: Signer, latest: str | None, what: str = "this node's key") -> None:
    """``NotTheLogsKey`` unless ``signer`` signed ``latest``, the log's latest
    checkpoint (``None``: the log has none, any key may begin)."""
    if latest is None:
        return
    try:
        open_note(latest, signer.verifier_key())
    except BadCheckpoint as exc:
        raise NotTheLogsKey(
            f"{what} is not the key that signed this audit log's latest checkpoint ({exc}): "
            "give every node the same key file (GATEWAY_AUDIT_KEY)"
        ) from None


def load_or_create_signer(path: Path, name: str = ORIGIN) -> Signer:
    """The log's signing key from ``path`` (PKCS#8 PEM), created there on
    first use, readable by its owner only."""
    try:
        return Signer(name, load_or_create_ed25519(path))
    except NotAnEd25519Key as exc:
        raise BadCheckpoint(str(exc)) from None
