"""The outside verifier (tools/verify_audit_log.py): given only what
`gateway audit export` writes and the log's public key, it finds the log
intact, and names the first bad entry of every kind of tampering with the
export or its checkpoint. It shares no code with the gateway."""

from __future__ import annotations

import ast
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.audit import log, merkle
from gateway.audit.checkpoint import Checkpoint, Signer, load_or_create_signer
from gateway.store import open_store
from tests.e2e.test_audit_cli import audit  # `gateway audit ...` as an operator runs it
from tests.store.test_audit_log import record  # a read of a Patient, as request-<n>

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "verify_audit_log.py"
FIRST_PARTY = ("gateway", "consent", "mappings", "conformance", "tests", "tools")

Line = dict[str, Any]


@dataclass(frozen=True)
class Exported:
    lines: list[Line]  # the export, parsed: the checkpoint, then the entries
    verifier_key: str  # as `gateway audit public-key` prints it
    pem: Path  # the same public key as a PEM file
    held: Path  # a checkpoint an auditor kept from when the log had 5 entries
    signer: Signer
    work: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A real log of 40 entries, checkpointed at 5, 23 and 40, exported by
    the gateway's own command."""
    work = tmp_path_factory.mktemp("audit-verifier")
    url = f"sqlite:///{work}/gateway.db"
    key = work / "audit-key.pem"
    signer = load_or_create_signer(key)
    store = open_store(url)
    try:
        store.migrate()
        written = 0
        for count in (5, 18, 17):
            with store.unit_of_work() as uow:
                log.append(uow, [record(written + i) for i in range(count)])
            written += count
            note = log.sign_checkpoint(store, signer)
            assert note is not None
            if written == 5:
                (work / "kept-at-5.txt").write_text(note, encoding="utf-8")
    finally:
        store.close()
    export = work / "audit.ndjson"
    done = audit(url, key, "export", "--out", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    vkey = audit(url, key, "public-key").stdout.strip()
    assert vkey == signer.verifier_key()
    pem = work / "audit-public.pem"
    pem.write_bytes(
        signer.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    lines = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["size"] == 40 and len(lines) == 41
    return Exported(lines, vkey, pem, work / "kept-at-5.txt", signer, work)


def verify(
    tmp_path: Path, exported: Exported, lines: list[Line], *extra: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the verifier as an outsider would: a copy of the script, outside
    the repository, in isolated mode, given the export and the key only."""
    outside = tmp_path / "auditor"
    outside.mkdir(exist_ok=True)
    script = outside / "verify_audit_log.py"
    shutil.copy(SCRIPT, script)
    export = outside / "export.ndjson"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-I", str(script), str(export), "--key", key or str(exported.pem), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=outside,
    )


def expect_bad(result: subprocess.CompletedProcess[str], first: int | None, *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "NOT intact" in result.stdout or "NOT verified" in result.stdout, result.stdout
    if first is not None:
        assert f"first bad entry {first}\n" in result.stdout, result.stdout
    for word in words:
        assert word in result.stdout, result.stdout


def _entries(exported: Exported) -> list[Line]:
    return [dict(line) for line in exported.lines[1:]]


def _with_bytes(line: Line, content: bytes) -> Line:
    """An entry line rewritten to hold ``content``, hashes and copy to match:
    what a careful tamperer would do."""
    return {
        **line,
        "canonical": base64.b64encode(content).decode(),
        "entry": json.loads(content),
        "leafHash": base64.b64encode(merkle.leaf_hash(content)).decode(),
    }


# -- intact ----------------------------------------------------------------------------


def test_an_honest_export_verifies_with_the_pem_key(tmp_path: Path, exported: Exported) -> None:
    result = verify(tmp_path, exported, exported.lines)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("audit log intact: 40 entries"), result.stdout
    assert result.stderr == ""


def test_and_with_the_published_verifier_key_and_a_kept_checkpoint(
    tmp_path: Path, exported: Exported
) -> None:
    key_file = tmp_path / "vkey.txt"
    key_file.write_text(exported.verifier_key + "\n", encoding="utf-8")
    result = verify(
        tmp_path, exported, exported.lines, "--checkpoint", str(exported.held), key=str(key_file)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 checkpoint(s) verified, the newest at size 40" in result.stdout
    # The verifier key may be given as itself, as it is served.
    literal = verify(tmp_path, exported, exported.lines, key=exported.verifier_key)
    assert literal.returncode == 0, literal.stdout


# -- the entries tampered with ---------------------------------------------------------

Tamper = Callable[[list[Line]], list[Line]]


def _change_a_byte(entries: list[Line]) -> list[Line]:
    content = bytearray(base64.b64decode(entries[7]["canonical"]))
    content[content.index(b"request-7") + 8] = ord("8")  # entry 7 now names request-8
    entries[7] = _with_bytes(entries[7], bytes(content))
    return entries


def _change_a_byte_only(entries: list[Line]) -> list[Line]:
    content = bytearray(base64.b64decode(entries[7]["canonical"]))
    content[content.index(b"request-7") + 8] = ord("8")
    entries[7] = {**entries[7], "canonical": base64.b64encode(bytes(content)).decode()}
    return entries


def _drop(entries: list[Line]) -> list[Line]:
    del entries[12]
    return entries


def _drop_and_renumber(entries: list[Line]) -> list[Line]:
    del entries[12]
    return [{**line, "index": i} for i, line in enumerate(entries)]


def _swap(entries: list[Line]) -> list[Line]:
    entries[3], entries[4] = entries[4], entries[3]
    return entries


def _swap_and_renumber(entries: list[Line]) -> list[Line]:
    return [{**line, "index": i} for i, line in enumerate(_swap(entries))]


def _insert(entries: list[Line]) -> list[Line]:
    forged = _with_bytes(entries[20], b'{"resourceType":"AuditEvent","n":"forged"}')
    return [{**line, "index": i} for i, line in enumerate([*entries[:20], forged, *entries[20:]])]


def _truncate(entries: list[Line]) -> list[Line]:
    return entries[:30]


def _readable_copy_only(entries: list[Line]) -> list[Line]:
    entries[9] = {**entries[9], "entry": {**entries[9]["entry"], "recorded": "2020-01-01"}}
    return entries


@pytest.mark.parametrize(
    ("tamper", "first", "words"),
    [
        (_change_a_byte, 7, ["entry 7 (line 9) is not the entry"]),
        (_change_a_byte_only, 7, ["'leafHash' is not the hash", "differs from the bytes"]),
        (_drop, 12, ["entry 12 is missing (deleted)"]),
        (_drop_and_renumber, 12, ["entry 12 (line 14) is not the entry"]),
        (_swap, 3, ["out of order: entry 3 is listed after entry 4"]),
        (_swap_and_renumber, 3, ["entry 3 (line 5) is not the entry"]),
        (_insert, 20, ["entry 20 (line 22) is not the entry"]),
        (_truncate, 30, ["entries from 30 on are missing (truncated)"]),
        (_readable_copy_only, 9, ["its readable 'entry' differs"]),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_tampered_entries_are_found_and_the_first_named(
    tmp_path: Path, exported: Exported, tamper: Tamper, first: int, words: list[str]
) -> None:
    lines = [exported.lines[0], *tamper(_entries(exported))]
    expect_bad(verify(tmp_path, exported, lines), first, *words)


def test_without_proofs_the_root_still_catches_a_change(tmp_path: Path, exported: Exported) -> None:
    """Proofs only narrow it down: the recomputed tree head is the check.
    With the kept checkpoint too, the change is placed after entry 5."""
    entries = [
        {k: v for k, v in line.items() if k != "inclusionProof"}
        for line in _change_a_byte(_entries(exported))
    ]
    lines = [exported.lines[0], *entries]
    expect_bad(verify(tmp_path, exported, lines), 0, "one of entries 0 to 39 differs")
    narrowed = verify(tmp_path, exported, lines, "--checkpoint", str(exported.held))
    expect_bad(narrowed, 5, "one of entries 5 to 39 differs")


# -- the checkpoint tampered with ------------------------------------------------------


def _root(contents: list[bytes]) -> bytes:
    nodes: dict[tuple[int, int], bytes] = {}
    for index, content in enumerate(contents):
        for level, position, digest in merkle.completed_nodes(
            index, merkle.leaf_hash(content), lambda lv, ix: nodes[(lv, ix)]
        ):
            nodes[(level, position)] = digest
    return merkle.root(lambda lv, ix: nodes[(lv, ix)], len(contents))


def _head(note: str, size: int, root: bytes) -> Line:
    return {"checkpoint": note, "size": size, "root": base64.b64encode(root).decode()}


def test_a_checkpoint_signed_by_another_key_is_refused(tmp_path: Path, exported: Exported) -> None:
    other = load_or_create_signer(tmp_path / "other-key.pem")
    head = exported.lines[0]
    root = base64.b64decode(head["root"])
    forged = other.sign(Checkpoint(other.name, head["size"], root))
    result = verify(tmp_path, exported, [_head(forged, head["size"], root), *exported.lines[1:]])
    expect_bad(result, None, "no signature by the given key", "no checkpoint verifies")


def test_an_altered_checkpoint_does_not_verify(tmp_path: Path, exported: Exported) -> None:
    head = exported.lines[0]
    note = head["checkpoint"].replace("\n40\n", "\n39\n", 1)
    result = verify(tmp_path, exported, [{**head, "checkpoint": note}, *exported.lines[1:]])
    expect_bad(result, None, "signature does not verify")


def test_a_history_rewritten_and_re_signed_is_caught_by_a_kept_checkpoint(
    tmp_path: Path, exported: Exported
) -> None:
    """An operator with the database and the signing key rewrites entry 2
    and re-signs: the export alone agrees with itself, the checkpoint the
    auditor kept at 5 entries does not."""
    entries = _entries(exported)
    entries[2] = _with_bytes(entries[2], b'{"resourceType":"AuditEvent","n":"rewritten"}')
    contents = [base64.b64decode(line["canonical"]) for line in entries]
    root = _root(contents)
    resigned = exported.signer.sign(Checkpoint(exported.signer.name, 40, root))
    stripped = [{k: v for k, v in line.items() if k != "inclusionProof"} for line in entries]
    lines = [_head(resigned, 40, root), *stripped]
    assert verify(tmp_path, exported, lines).returncode == 0  # what a kept checkpoint is for
    caught = verify(tmp_path, exported, lines, "--checkpoint", str(exported.held))
    expect_bad(caught, 0, "the checkpoint you kept", "at size 5 does not match the entries")


def test_a_kept_checkpoint_beyond_the_export_is_a_truncation(
    tmp_path: Path, exported: Exported
) -> None:
    """The log rolled back to before a checkpoint the auditor holds."""
    kept = tmp_path / "kept-at-40.txt"
    kept.write_text(exported.lines[0]["checkpoint"], encoding="utf-8")
    store_export = [exported.lines[0], *exported.lines[1:31]]
    result = verify(tmp_path, exported, store_export, "--checkpoint", str(kept))
    expect_bad(result, 30, "the checkpoint you kept", "covers 40")


# -- bad input: a verdict, never a traceback -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json\n",
        "[1, 2]\n",
        '{"index": "zero", "canonical": "AA=="}\n',
        '{"index": 0, "canonical": "***"}\n',
        '{"checkpoint": 42}\n',
        '{"checkpoint": "london-care-gateway/audit\\n99999999999999999999999\\nAA==\\n\\n"}\n',
        '{"index": 0, "canonical": "AA==", "inclusionProof": "nope"}\n',
        '{"something": "else"}\n',
    ],
)
def test_bad_exports_get_a_verdict_not_a_traceback(
    tmp_path: Path, exported: Exported, text: str
) -> None:
    export = tmp_path / "bad.ndjson"
    export.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(export), "--key", str(exported.pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    expect_bad(result, None)


def test_bad_keys_and_missing_files_get_a_verdict(tmp_path: Path, exported: Exported) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)))
    for key in (str(garbage), str(binary), "name+00+AA==", str(tmp_path / "absent.pem")):
        expect_bad(verify(tmp_path, exported, exported.lines, key=key), None, "NOT verified")
    missing = verify(tmp_path, exported, exported.lines, "--checkpoint", str(tmp_path / "gone"))
    expect_bad(missing, None, "cannot read the checkpoint")


# -- standalone ------------------------------------------------------------------------


def test_the_verifier_shares_no_code_with_the_gateway() -> None:
    """Standard library and cryptography only: a bug in the gateway's
    hashing or verification cannot hide itself by being shared."""
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add(node.module or "")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"__import__", "exec", "eval"}
    tops = {name.split(".")[0] for name in imported}
    assert tops, "the script imports something"
    assert not tops & set(FIRST_PARTY), tops
    assert tops - {"cryptography"} <= set(sys.stdlib_module_names), tops
