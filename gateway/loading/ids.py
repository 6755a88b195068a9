"""The deployment's key for mapped ids, and a store written before ids were
keyed brought up to it.

The ids of mapped resources are keyed with a secret of the deployment
(``mappings.identity``), so that nobody outside can compute a Patient's id
from an NHS number. The secret is 32 random bytes made on first start and
kept in the database (``gateway_secret``), beside the data it keys: every
worker, every node sharing one PostgreSQL and every command (``gateway
load``, ``demo``, ``mllp``) maps with the one key, and a backup of the
database holds it. It is never shown. Lost, the next load of a source
record would write a new resource beside the one on file, so it is never
replaced either.

A store written before ids were keyed holds each loaded resource under its
id's basis (a UUID version 5 anyone can compute). ``ensure_keyed_ids`` moves
each to ``keyed_id(basis)``, the id a fresh load maps it to, in one
transaction, once (recorded in ``index_state`` as ``ids``):

- which: ids of version 5 of resources the loader wrote (a Provenance by a
  ``load:<format>`` client names a version of it, or the loading ledger
  names it). A client may have chosen a UUID v5 of its own for a resource it
  created: that one is left as it is;
- every version row and the current row move to the new id; every
  occurrence of a moved id in any stored version's content is replaced (the
  references, ``Type/id``, ``Type/id/_history/n`` and absolute forms,
  Provenance targets, and the identifiers a mapping made from a person's
  id, as a fresh load makes them now); the index rows of every resource
  moved or whose current content changed are rebuilt from that content;
- the loading ledger (whom each record was about, what it stated) and the
  probable matches follow;
- the audit log is never rewritten: its entries keep the ids they were
  written with, tamper-evident as they are. So that a person's access report
  still finds what was recorded under their old id, each of their rows in
  ``audit_patient`` (the log's index of whom an entry touched, outside the
  hashed entries) is matched by one under the new id.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import orjson

from gateway import fhirjson
from gateway.access.index import entries as index_entries
from gateway.identifiers import CLIENT_SYSTEM
from gateway.store import Querier, Store, UnitOfWork, as_bytes
from gateway.store.secrets import kept_secret
from mappings.identity import ID_KEY_BYTES, keyed_id, use_id_key

log = logging.getLogger("gateway.loading")

SECRET_NAME = "mapped-id-key"
_STATE = "ids"  # index_state: the ids' scheme the stored data is written in
_KEYED = "keyed-1"
_BATCH = 500
# A UUID of version 5, as a mapped id was before ids were keyed.
_BASIS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_BASIS_BYTES = re.compile(_BASIS.pattern.encode())
_LOADER = "load:"  # the client id prefix of the loader's Provenances


def id_key(store: Store) -> bytes:
    """The deployment's key for mapped ids, made and kept on first use."""
    return bytes.fromhex(kept_secret(store, SECRET_NAME, lambda: secrets.token_hex(ID_KEY_BYTES)))


def use_store_id_key(store: Store) -> bytes:
    """Put ``store``'s key in force for every mapping this process makes."""
    key = id_key(store)
    use_id_key(key)
    return key


def ensure_keyed_ids(store: Store) -> int | None:
    """Put ``store``'s key in force, moving a store written before ids were
    keyed to the keyed ids first; returns how many resources moved, or
    ``None`` if that was done before. Run before anything maps."""
    use_store_id_key(store)
    if store.index_version(_STATE) == _KEYED:
        return None
    with store.unit_of_work() as uow:
        uow.lock_type("gateway:keyed-ids")  # one process moves them; the others wait
        if _state(uow) == _KEYED:
            return None
        moved = _move(uow)
        uow.set_index_version(_KEYED, _STATE)
    if moved:
        log.info("mapped ids keyed", extra={"resources": moved})
    return moved


def _state(reader: Querier) -> str | None:
    rows = reader.select("SELECT version FROM index_state WHERE name = ?", [_STATE])
    return str(rows[0][0]) if rows else None


def _move(uow: UnitOfWork) -> int:
    moving = _loaded_bases(uow)
    if not moving:
        return 0
    new = {old: keyed_id(old) for _, old in moving}

    def rewritten(content: bytes) -> bytes:
        return _BASIS_BYTES.sub(
            lambda found: new.get(found.group().decode(), found.group().decode()).encode(),
            content,
        )

    reindex: dict[tuple[str, str], bytes | None] = {}
    after = 0
    while rows := uow.select(
        "SELECT v.seq, v.res_type, v.res_id, v.content, c.seq FROM resource_version v "
        "LEFT JOIN resource_current c "
        "ON c.res_type = v.res_type AND c.res_id = v.res_id AND c.seq = v.seq "
        "WHERE v.seq > ? ORDER BY v.seq LIMIT ?",
        [after, _BATCH],
    ):
        for seq, res_type, res_id, stored, current in rows:
            after = int(str(seq))
            key = (str(res_type), str(res_id))
            content = None if stored is None else as_bytes(stored)
            changed = None if content is None else rewritten(content)
            renamed = key in moving
            if renamed or changed != content:
                uow.execute(
                    "UPDATE resource_version SET res_id = ?, content = ? WHERE seq = ?",
                    [new[key[1]] if renamed else key[1], changed, after],
                )
                if current is not None:
                    reindex[key] = changed
    for res_type, old in moving:
        uow.execute(
            "UPDATE resource_current SET res_id = ? WHERE res_type = ? AND res_id = ?",
            [new[old], res_type, old],
        )
    for (res_type, res_id), content in reindex.items():
        if (res_type, res_id) in moving:
            uow.replace_index(res_type, res_id, [])  # the rows under the old id
            res_id = new[res_id]
        if content is not None:
            uow.replace_index(res_type, res_id, index_entries(fhirjson.loads(content)))
    _move_ledger(uow, moving, new)
    return len(moving)


def _loaded_bases(reader: Querier) -> set[tuple[str, str]]:
    """(type, id) of every stored resource the loader wrote whose id is a
    basis: a UUID v5, as mapped ids were before they were keyed."""
    named: set[tuple[str, str]] = set()
    after = 0
    while rows := reader.select(
        "SELECT seq, content FROM resource_version "
        "WHERE res_type = 'Provenance' AND content IS NOT NULL AND seq > ? "
        "ORDER BY seq LIMIT ?",
        [after, _BATCH],
    ):
        for seq, content in rows:
            after = int(str(seq))
            raw = as_bytes(content)
            if _LOADER.encode() in raw:
                named.update(_loader_targets(fhirjson.loads(raw)))
    for patient_id, resources in reader.select(
        "SELECT patient_id, resources FROM mapping_record", []
    ):
        if patient_id is not None:
            named.add(("Patient", str(patient_id)))
        for typed in orjson.loads(str(resources)) if resources is not None else ():
            res_type, _, res_id = str(typed).partition("/")
            named.add((res_type, res_id))
    candidates = sorted({res_id for _, res_id in named if _BASIS.fullmatch(res_id)})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start : start + _BATCH]
        stored.update(
            (str(res_type), str(res_id))
            for res_type, res_id in reader.select(
                "SELECT res_type, res_id FROM resource_current "
                f"WHERE res_id IN ({', '.join('?' for _ in batch)})",
                batch,
            )
        )
    return stored & named


def _loader_targets(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    """The resources a Provenance names, if the loader wrote it."""
    loader = any(
        isinstance(agent, dict)
        and isinstance(who := agent.get("who"), dict)
        and isinstance(identifier := who.get("identifier"), dict)
        and identifier.get("system") == CLIENT_SYSTEM
        and str(identifier.get("value", "")).startswith(_LOADER)
        for agent in provenance.get("agent") or ()
    )
    if not loader:
        return []
    found = []
    for target in provenance.get("target") or ():
        reference = target.get("reference") if isinstance(target, dict) else None
        if isinstance(reference, str):
            res_type, _, rest = reference.partition("/")
            found.append((res_type, rest.split("/", 1)[0]))
    return found


def _move_ledger(uow: UnitOfWork, moving: set[tuple[str, str]], new: dict[str, str]) -> None:
    """The loading ledger, the probable matches and the audit log's index of
    people follow the moved ids."""

    def moved(text: str) -> str:
        return _BASIS.sub(lambda found: new.get(found.group(), found.group()), text)

    for source_org, fmt, record_key, patient_id, resources in uow.select(
        "SELECT source_org, format, record_key, patient_id, resources FROM mapping_record", []
    ):
        person = None if patient_id is None else str(patient_id)
        stated = None if resources is None else str(resources)
        after = (
            None if person is None else new.get(person, person),
            None if stated is None else moved(stated),
        )
        if after != (person, stated):
            uow.execute(
                "UPDATE mapping_record SET patient_id = ?, resources = ? "
                "WHERE source_org = ? AND format = ? AND record_key = ?",
                [*after, source_org, fmt, record_key],
            )
    for first, second in uow.select("SELECT patient_id, candidate_id FROM patient_match", []):
        pair = (str(first), str(second))
        if pair[0] in new or pair[1] in new:
            uow.execute(
                "UPDATE patient_match SET patient_id = ?, candidate_id = ? "
                "WHERE patient_id = ? AND candidate_id = ?",
                [new.get(pair[0], pair[0]), new.get(pair[1], pair[1]), *pair],
            )
    for res_type, old in moving:
        if res_type != "Patient":
            continue
        uow.execute(
            "INSERT INTO audit_patient (patient_id, idx) "
            "SELECT ?, idx FROM audit_patient WHERE patient_id = ? "
            "ON CONFLICT DO NOTHING",
            [new[old], old],
        )
