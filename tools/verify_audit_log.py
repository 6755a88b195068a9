#!/usr/bin/env python3
"""Verify an export of the London Care Gateway's audit log, as an outsider.

    python verify_audit_log.py --key KEY [--checkpoint FILE ...] EXPORT

``EXPORT`` is what ``gateway audit export`` writes (``-`` reads standard
input): NDJSON whose lines are either a signed checkpoint,
``{"checkpoint": <signed note>, "size", "root"}``, or an entry,
``{"index", "canonical": <base64 of the exact bytes hashed>, "entry",
"leafHash", "inclusionProof"}``; only ``checkpoint``, ``index`` and
``canonical`` are needed, the rest is checked when present.

``KEY`` is the log's public key: a file holding either the published
verifier key (``gateway audit public-key``, ``GET /audit/public-key``:
``<name>+<hex key id>+<base64>``) or an Ed25519 public key in PEM; or the
verifier key itself. ``--checkpoint`` adds checkpoints kept from earlier
(signed notes as served by ``GET /audit/checkpoint``).

The script recomputes the RFC 6962 Merkle tree over the entries in the
order the export lists them, checks every checkpoint's Ed25519 signature
(C2SP signed-note form) and that its root is the recomputed tree head at its
size, and prints a verdict: exit 0 if intact, 1 naming the first bad entry
otherwise (and when the input cannot be read at all).

It is deliberately standalone: Python's standard library and
``cryptography`` only, and no code shared with the gateway, so a bug in the
gateway's own hashing or verification cannot hide itself here too.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

DEFAULT_ORIGIN = "london-care-gateway/audit"
EM_DASH = "\u2014"
ED25519_TYPE = b"\x01"
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})")


class Unreadable(Exception):
    """Input that cannot be checked at all: a verdict of its own."""


# -- RFC 6962 hashing -----------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_heads(leaves: list[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The RFC 6962 tree head over the first ``s`` leaves, for each ``s`` in
    ``sizes`` (at most ``len(leaves)``), in one pass: the roots of the
    complete subtrees along the right edge are enough to give the head at
    any size (folded right to left, which is where RFC 6962 splits)."""
    heads: dict[int, bytes] = {}
    if 0 in sizes:
        heads[0] = hashlib.sha256(b"").digest()
    edge: list[tuple[int, bytes]] = []  # (height, hash), left to right
    for count, leaf in enumerate(leaves, start=1):
        height, digest = 0, leaf
        while edge and edge[-1][0] == height:
            digest = node_hash(edge.pop()[1], digest)
            height += 1
        edge.append((height, digest))
        if count in sizes:
            head = edge[-1][1]
            for _, left in reversed(edge[:-1]):
                head = node_hash(left, head)
            heads[count] = head
    return heads


def included(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` lead from leaf ``index`` to
    ``root`` in a tree of ``size`` leaves?"""
    if not 0 <= index < size:
        return False
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and digest == root


# -- keys and signed checkpoints ------------------------------------------------------


@dataclass(frozen=True)
class Key:
    name: str
    public: Ed25519PublicKey
    raw: bytes

    @property
    def key_id(self) -> bytes:
        """C2SP signed note: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
        return hashlib.sha256(self.name.encode() + b"\n" + ED25519_TYPE + self.raw).digest()[:4]


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unreadable(f"{what} is not base64") from None


def read_key(given: str, origin: str) -> Key:
    """A verifier key (``name+keyid+base64``) or an Ed25519 PEM public key,
    from the file ``given`` or, failing that, ``given`` itself."""
    path = Path(given)
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else given
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot read the key {given}: {exc}") from None
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            loaded = load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise Unreadable(f"the key is not a PEM public key: {exc}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise Unreadable("the key is not an Ed25519 public key (checkpoints are Ed25519)")
        return Key(origin, loaded, loaded.public_bytes_raw())
    parts = text.split("+", 2)  # the base64 may hold "+" itself
    if len(parts) != 3 or not parts[0]:
        raise Unreadable(
            "the key is neither a verifier key (name+keyid+base64) nor a PEM public key"
        )
    name, key_id, encoded = parts
    raw = _b64(encoded, "the verifier key")
    if len(raw) != 33 or raw[:1] != ED25519_TYPE:
        raise Unreadable("the verifier key is not an Ed25519 key")
    key = Key(name, Ed25519PublicKey.from_public_bytes(raw[1:]), raw[1:])
    if key.key_id.hex() != key_id.lower():
        raise Unreadable("the verifier key's key id does not match its public key")
    return key


@dataclass(frozen=True)
class Checkpoint:
    where: str  # for messages: "the export's checkpoint at size 12"
    size: int
    root: bytes


def open_checkpoint(note: str, key: Key, where: str) -> Checkpoint:
    """The checkpoint a signed note holds, if ``key`` signed it; raises
    ``ValueError`` saying why not."""
    text, blank, signatures = note.partition("\n\n")
    if not blank:
        raise ValueError("not a signed note (its text, a blank line, then signatures)")
    lines = text.split("\n")  # origin, size, root hash, then optional extension lines
    if len(lines) < 3:
        raise ValueError("the note's text is not origin, tree size, root hash")
    origin, size_text, root_text = lines[:3]
    if not _DECIMAL.fullmatch(size_text):
        raise ValueError(f"the tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32:
        raise ValueError("the root hash is not 32 bytes of base64")
    signed = (text + "\n").encode()
    others: list[str] = []
    for line in signatures.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise ValueError(f"a signature line is malformed: {line[:80]!r}")
        try:
            stamp = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"a signature line is not base64: {line[:80]!r}") from None
        if parts[1] != key.name or stamp[:4] != key.key_id:
            others.append(f"{parts[1]} (key id {stamp[:4].hex()})")
            continue
        try:
            key.public.verify(stamp[4:], signed)
        except InvalidSignature:
            raise ValueError("its signature does not verify with the given key") from None
        if origin != key.name:
            raise ValueError(f"it is for the log {origin!r}, not {key.name!r}")
        return Checkpoint(f"{where} at size {size_text}", int(size_text), root)
    by = f"; it is signed by {', '.join(others)}" if others else ""
    raise ValueError(f"it has no signature by the given key ({key.name} {key.key_id.hex()}){by}")


# -- the export -----------------------------------------------------------------------


@dataclass
class Entry:
    line: int
    claimed: int  # the "index" the line says it has
    leaf: bytes
    proof: list[bytes] | None


@dataclass
class Report:
    entries: int = 0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    # (first entry concerned, or None for a problem with no one entry, what)
    findings: list[tuple[int | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, index: int | None, problem: str) -> None:
        self.findings.append((index, problem))


def _entry(line_no: int, position: int, record: dict[str, Any], report: Report) -> Entry:
    claimed = record.get("index")
    if type(claimed) is not int:
        raise Unreadable(f"line {line_no}: 'index' is not a whole number")
    encoded = record.get("canonical")
    if not isinstance(encoded, str):
        raise Unreadable(f"line {line_no}: no 'canonical' (base64 of the entry's bytes)")
    content = _b64(encoded, f"line {line_no}: 'canonical'")
    leaf = leaf_hash(content)
    if "leafHash" in record and record["leafHash"] != base64.b64encode(leaf).decode():
        report.find(
            position,
            f"entry {position} (line {line_no}): its 'leafHash' is not the hash of its bytes",
        )
    if "entry" in record:
        # The readable copy must say what the signed bytes say, or a reader of
        # it would be misled while the hashes still check.
        try:
            same = json.loads(content) == record["entry"]
        except ValueError:
            same = False
        if not same:
            report.find(
                position,
                f"entry {position} (line {line_no}): its readable 'entry' differs "
                "from the bytes that are hashed ('canonical')",
            )
    proof: list[bytes] | None = None
    raw_proof = record.get("inclusionProof")
    if isinstance(raw_proof, list) and all(isinstance(p, str) for p in raw_proof):
        proof = [_b64(p, f"line {line_no}: 'inclusionProof'") for p in raw_proof]
    elif raw_proof is not None:
        raise Unreadable(f"line {line_no}: 'inclusionProof' is not a list of base64 hashes")
    return Entry(line_no, claimed, leaf, proof)


def read_export(text: str, key: Key, report: Report) -> tuple[list[Entry], list[Checkpoint]]:
    entries: list[Entry] = []
    signed: list[Checkpoint] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise Unreadable(f"line {line_no} of the export is not JSON") from None
        if not isinstance(record, dict):
            raise Unreadable(f"line {line_no} of the export is not a JSON object")
        if "checkpoint" in record:
            note = record["checkpoint"]
            if not isinstance(note, str):
                raise Unreadable(f"line {line_no}: 'checkpoint' is not a signed note")
            try:
                opened = open_checkpoint(note, key, "the export's checkpoint")
            except ValueError as exc:
                report.find(None, f"the export's checkpoint on line {line_no}: {exc}")
                continue
            # The signed note is what counts; side fields that disagree with it
            # are a sign the export was edited.
            size, root = record.get("size"), record.get("root")
            if (size is not None and size != opened.size) or (
                root is not None and root != base64.b64encode(opened.root).decode()
            ):
                report.find(
                    None,
                    f"the export's checkpoint on line {line_no}: its 'size' or 'root' "
                    "differ from what the signed note says",
                )
            signed.append(opened)
        elif "index" in record:
            entries.append(_entry(line_no, len(entries), record, report))
        else:
            raise Unreadable(f"line {line_no} is neither a checkpoint nor an entry")
    return entries, signed


def _order(entries: list[Entry], report: Report) -> None:
    """Entry ``i`` is the ``i``-th listed: name the first that is not."""
    for position, entry in enumerate(entries):
        if entry.claimed == position:
            continue
        claims = [e.claimed for e in entries]
        if position in claims[position:]:
            report.find(
                position,
                f"entries out of order: entry {position} is listed after entry "
                f"{entry.claimed} (line {entry.line})",
            )
        elif entry.claimed > position:
            last = entry.claimed - 1
            span = f"entries {position} to {last} are" if last > position else f"entry {last} is"
            report.find(position, f"{span} missing (deleted)")
        else:
            report.find(
                position,
                f"an entry was inserted: line {entry.line}, where entry {position} should be, "
                f"says it is entry {entry.claimed}",
            )
        return


def verify(text: str, key: Key, held_notes: list[tuple[str, str]]) -> Report:
    report = Report()
    entries, signed = read_export(text, key, report)
    for where, note in held_notes:
        try:
            signed.append(open_checkpoint(note, key, f"the checkpoint you kept ({where})"))
        except ValueError as exc:
            report.find(None, f"the checkpoint you kept ({where}): {exc}")
    report.entries = len(entries)
    report.checkpoints = signed
    if not signed:
        report.find(None, "no checkpoint verifies with the given key: nothing proves these entries")
    _order(entries, report)

    leaves = [e.leaf for e in entries]
    heads = tree_heads(leaves, {c.size for c in signed if c.size <= len(leaves)})

    # Inclusion proofs against the export's newest checkpoint, where given,
    # name the first entry that is not the one signed, whatever was done to
    # the entries after it.
    first_unproven: int | None = None
    exported = [c for c in signed if c.where.startswith("the export's")]
    if exported:
        newest = max(exported, key=lambda c: c.size)
        for position, entry in enumerate(entries[: newest.size]):
            if entry.proof is None:
                continue
            if not included(entry.leaf, position, newest.size, entry.proof, newest.root):
                first_unproven = position
                report.find(
                    position,
                    f"entry {position} (line {entry.line}) is not the entry {newest.where} "
                    "signed: changed, replaced, inserted or moved",
                )
                break

    matched = 0  # the entries covered by a checkpoint that matched
    for checkpoint in sorted(signed, key=lambda c: c.size):
        if checkpoint.size > len(entries):
            n = len(entries)
            earlier = any(i is not None and i < n for i, _ in report.findings)
            report.find(
                n,
                f"the export holds {n} entries but {checkpoint.where} covers "
                f"{checkpoint.size}: "
                + (
                    f"{checkpoint.size - n} missing, as found above"
                    if earlier
                    else f"entries from {n} on are missing (truncated)"
                ),
            )
        elif heads[checkpoint.size] != checkpoint.root:
            if first_unproven is not None and first_unproven < checkpoint.size:
                where = f"entry {first_unproven} first differs"
                first = first_unproven
            else:
                where = f"one of entries {matched} to {checkpoint.size - 1} differs"
                first = matched
            report.find(
                first,
                f"{checkpoint.where} does not match the entries ({where}): entries were "
                "changed, inserted, deleted or reordered, or the history was rewritten "
                "after that checkpoint was signed",
            )
        else:
            matched = max(matched, checkpoint.size)
    if matched < len(entries) and not report.findings:
        report.notes.append(
            f"entries {matched} to {len(entries) - 1} are not covered by a checkpoint "
            "that matched: nothing here vouches for them"
        )
    return report


def _read_text(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot read {what} {path}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Verify an export of the audit log with the log's public key alone."
    )
    parser.add_argument("export", help="the NDJSON 'gateway audit export' wrote ('-': stdin)")
    parser.add_argument(
        "--key",
        required=True,
        help="the log's public key: a file with its verifier key or an Ed25519 PEM public "
        "key, or the verifier key itself",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint (signed note) you kept from earlier; may be repeated",
    )
    parser.add_argument(
        "--origin",
        default=DEFAULT_ORIGIN,
        help=f"the log's name, for a PEM key (default: {DEFAULT_ORIGIN})",
    )
    args = parser.parse_args(argv)
    try:
        key = read_key(args.key, args.origin)
        held = [(path, _read_text(path, "the checkpoint")) for path in args.checkpoint]
        report = verify(_read_text(args.export, "the export"), key, held)
    except Unreadable as exc:
        print(f"audit log NOT verified: {exc}")
        return 1
    except Exception as exc:  # a last resort: a verdict, never a traceback
        print(f"audit log NOT verified: the verifier failed ({type(exc).__name__}: {exc})")
        return 1
    if not report.findings:
        newest = max(report.checkpoints, key=lambda c: c.size)
        print(
            f"audit log intact: {report.entries} entries; {len(report.checkpoints)} "
            f"checkpoint(s) verified, the newest at size {newest.size}, root "
            f"{base64.b64encode(newest.root).decode()}"
        )
        for note in report.notes:
            print(f"  note: {note}")
        return 0
    indexed = [index for index, _ in report.findings if index is not None]
    headline = f"first bad entry {min(indexed)}" if indexed else "the checkpoints do not verify"
    print(f"audit log NOT intact: {headline}")
    for _, problem in sorted(
        report.findings, key=lambda f: (f[0] is not None, f[0] if f[0] is not None else 0)
    ):
        print(f"  - {problem}")
    for note in report.notes:
        print(f"  note: {note}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
