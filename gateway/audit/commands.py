"""``gateway audit ...``: verify the log, sign a checkpoint, print the public
key, export the entries with their proofs."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.audit import log, merkle, staging
from gateway.audit.checkpoint import (
    BadCheckpoint,
    NotTheLogsKey,
    load_or_create_signer,
    open_note,
    parse_verifier_key,
    signer_of_log,
)
from gateway.config import Settings
from gateway.store import Store


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    actions = audit.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify",
        help="recompute the log, check every checkpoint; exit 1 naming the first bad entry",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        help="a checkpoint kept elsewhere (a signed note file) to check the log against",
    )
    verify.add_argument("--key", help="the verifier key (default: the log's own signing key's)")
    actions.add_parser("checkpoint", help="sign the current tree head now and print it")
    actions.add_parser("public-key", help="print the verifier key third parties check with")
    export = actions.add_parser(
        "export", help="NDJSON: the latest checkpoint, then each entry with its inclusion proof"
    )
    export.add_argument("--out", type=Path, help="a file (default: standard output)")


def run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    if args.action == "verify":
        return _verify(args, store, settings)
    path = settings.audit_key_path()
    try:
        # Not a new key where the log is signed already: its public key
        # would be one no checkpoint of the log verifies with.
        signer = signer_of_log(Path(path), log.latest_checkpoint(store))
    except NotTheLogsKey as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"the audit signing key {path} cannot be read: {_reason(exc)}", file=sys.stderr)
        return 1
    if args.action == "public-key":
        print(signer.verifier_key())
        return 0
    if args.action == "checkpoint":
        note = log.sign_checkpoint(store, signer)
        print(note if note is not None else "the audit log is empty: nothing to sign")
        return 0
    if args.action == "export":
        if args.out:
            with args.out.open("w", encoding="utf-8") as out:
                return _export(store, out)
        return _export(store, sys.stdout)
    raise AssertionError(args.action)


def _reason(exc: Exception) -> str:
    """What went wrong, without the file name the message already gives."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _verify(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    """Verify the log; exit 1 naming the first bad entry, or saying which
    checkpoint file or key could not be used (never a traceback)."""
    problems: list[str] = []
    if args.key:
        vkey = args.key
        try:
            parse_verifier_key(vkey)
        except BadCheckpoint as exc:
            print(f"audit log NOT verified: the key given with --key is unusable: {exc}")
            return 1
    else:
        path = Path(settings.audit_key_path())
        if not path.exists():
            print(
                f"audit log NOT verified: there is no audit signing key {path} to take its "
                "public key from; give the verifier key with --key"
            )
            return 1
        try:
            vkey = load_or_create_signer(path).verifier_key()
        except (OSError, ValueError) as exc:
            print(
                f"audit log NOT verified: the audit signing key {path} cannot be read "
                f"({_reason(exc)}); give the verifier key with --key"
            )
            return 1
    held: list[str] = []
    for file in args.checkpoint:
        try:
            note = file.read_text(encoding="utf-8")
            open_note(note, vkey)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"checkpoint {file} cannot be read: {_reason(exc)}")
        except BadCheckpoint as exc:
            problems.append(f"checkpoint {file} cannot be used: {exc}")
        else:
            held.append(note)
    result = log.verify(store, vkey, held)
    waiting = staging.staged(store)
    problems += [
        f"a staged entry (seq {seq}) is not an AuditEvent, so the log can never take it: {why}"
        for seq, why in waiting.unusable
    ]
    if waiting.waiting:
        # Entries committed with their writes that the gateway has not yet
        # moved into the log (it does within moments, and on starting).
        print(f"{waiting.waiting} entries staged by writes, not yet in the log")
    if result.intact and not problems:
        print(
            f"audit log intact: {result.entries} entries, {result.checkpoints} checkpoints verified"
        )
        return 0
    for problem in problems:
        print(f"audit log NOT verified: {problem}")
    if result.findings:
        first = result.findings[0]
        print(f"audit log NOT intact: first bad entry {first.index}: {first.problem}")
        for finding in result.findings[1:]:
            print(f"  also: entry {finding.index}: {finding.problem}")
    else:
        print(
            f"the rest of the log checked out: {result.entries} entries, "
            f"{result.checkpoints} checkpoints"
        )
    return 1


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _export(store: Store, out: TextIO) -> int:
    """The last signed checkpoint, then every entry it covers with its
    inclusion proof against it: checkable with the public key alone."""
    signed = log.checkpoints(store)
    if not signed:
        print("no signed checkpoint yet: run 'gateway audit checkpoint' first", file=sys.stderr)
        return 1
    size, root, note = signed[-1]
    out.write(orjson.dumps({"checkpoint": note, "size": size, "root": _b64(root)}).decode())
    out.write("\n")
    for index in range(size):
        entry = log.entry(store, index)
        assert entry is not None
        proof = log.inclusion_proof(store, index, size)
        line = {
            "index": index,
            "entry": orjson.loads(entry),
            # The exact bytes hashed (the entry as canonical JSON): check these.
            "canonical": _b64(entry),
            "leafHash": _b64(merkle.leaf_hash(entry)),
            "inclusionProof": [_b64(p) for p in proof],
        }
        out.write(orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode())
        out.write("\n")
    return 0
