"""``gateway audit ...``: verify the log, sign a checkpoint, print the public
key, export the entries with their proofs."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.audit import log, merkle
from gateway.audit.checkpoint import load_or_create_signer
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
    signer = load_or_create_signer(Path(settings.audit_key_path()))
    if args.action == "public-key":
        print(signer.verifier_key())
        return 0
    if args.action == "checkpoint":
        note = log.sign_checkpoint(store, signer)
        print(note if note is not None else "the audit log is empty: nothing to sign")
        return 0
    if args.action == "verify":
        held = [path.read_text(encoding="utf-8") for path in args.checkpoint]
        result = log.verify(store, args.key or signer.verifier_key(), held)
        if result.intact:
            print(
                f"audit log intact: {result.entries} entries, "
                f"{result.checkpoints} checkpoints verified"
            )
            return 0
        first = result.findings[0]
        print(f"audit log NOT intact: first bad entry {first.index}: {first.problem}")
        for finding in result.findings[1:]:
            print(f"  also: entry {finding.index}: {finding.problem}")
        return 1
    if args.action == "export":
        if args.out:
            with args.out.open("w", encoding="utf-8") as out:
                return _export(store, out)
        return _export(store, sys.stdout)
    raise AssertionError(args.action)


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
