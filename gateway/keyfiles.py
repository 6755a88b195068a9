"""The gateway's own Ed25519 signing keys as files: PKCS#8 PEM, readable by
their owner only, made on first use; and the writing of any secret file
(a private key, personal data) the same way.

The audit log's checkpoint key and the documents' signing key are each one
such file; every worker process loads the same one. A key file that group
or others may read is still used (it may be an operator's deliberate
choice, say a group the service shares), but the log says so each time it
is loaded.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)

# Owner read and write only, for secret files; owner only, for folders that
# hold nothing else.
SECRET_FILE_MODE = 0o600
SECRET_DIR_MODE = 0o700


class NotAnEd25519Key(ValueError):
    """A key file that holds some other kind of key."""


def load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path`` (PKCS#8 PEM, unencrypted), made
    and written there, mode 0600, if the file does not exist yet."""
    if path.exists():
        warn_if_exposed(path)
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
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
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


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path``, readable and writable by its
    owner only from the moment it exists (never briefly as the umask
    allows); ``FileExistsError`` if there is one already."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def open_secret(path: Path) -> int:
    """A new or emptied file ``path`` open for writing (its descriptor),
    owner-only as ``write_secret`` makes them, whatever it was before."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    os.fchmod(descriptor, SECRET_FILE_MODE)
    return descriptor


def secret_dir(path: Path) -> None:
    """Make ``path`` (and its parents, as usual) a folder only its owner may
    enter and list, for one that holds secret files and nothing else; an
    existing one is made so too."""
    path.mkdir(mode=SECRET_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(SECRET_DIR_MODE)


def warn_if_exposed(path: Path) -> bool:
    """Log a warning, and say so, when group or others may read ``path``."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s may be read by others (mode %o): chmod 600 it", path, mode & 0o777)
        return True
    return False
