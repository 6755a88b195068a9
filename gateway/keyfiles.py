"""The gateway's own Ed25519 signing keys as files: PKCS#8 PEM, readable by
their owner only, made on first use.

The audit log's checkpoint key and the documents' signing key are each one
such file; every worker process loads the same one.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class NotAnEd25519Key(ValueError):
    """A key file that holds some other kind of key."""


def load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path`` (PKCS#8 PEM, unencrypted), made
    and written there, mode 0600, if the file does not exist yet."""
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise NotAnEd25519Key(f"{path} does not hold an Ed25519 private key")
        return loaded
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written whole under a temporary name, then linked into place only if no
    # other process (a second worker starting at the same moment) got there
    # first: every process ends up with the one key on disk.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_ed25519(path)
    finally:
        temporary.unlink(missing_ok=True)
    return key
