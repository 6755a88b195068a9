"""Probable matches: Patients that may be one person, listed for an
operator to confirm or dismiss, never merged silently.

One NHS number is one Patient, whatever the source, so two records with
numbers are never a match. A record a source sends without one lands on a
Patient of its own (keyed by the source's id), and may be a person another
source knows: the same birth date and the same family name or postcode
make it worth an operator's look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import fhirjson
from gateway.errors import GatewayError
from gateway.search.matching import matching_ids
from gateway.store import Querier, Store, UnitOfWork
from mappings.identity import NHS_NUMBER_SYSTEM

# How many look-alikes one record may list: more is a common name and a
# common birthday, not a probable match.
_MOST = 5


@dataclass(frozen=True)
class ProbableMatch:
    patient_id: str
    candidate_id: str
    reason: str
    found_at: str
    status: str  # open, dismissed or merged
    decided_by: str | None
    decided_at: str | None


def _has_nhs_number(patient: dict[str, Any]) -> bool:
    return any(i.get("system") == NHS_NUMBER_SYSTEM for i in patient.get("identifier", []))


def _look_alikes(store: Querier, patient: dict[str, Any]) -> dict[str, str]:
    """Other Patients like ``patient``, each with why it looks alike."""
    born = patient.get("birthDate")
    if not isinstance(born, str):
        return {}
    criteria: list[tuple[str, str]] = []
    for name in patient.get("name", []):
        if family := name.get("family"):
            criteria.append((f"family={family}", f"same birth date and family name {family}"))
    for address in patient.get("address", []):
        if postcode := address.get("postalCode"):
            criteria.append(
                (f"address-postalcode={postcode}", f"same birth date and postcode {postcode}")
            )
    found: dict[str, str] = {}
    for criterion, reason in criteria:
        try:
            ids = matching_ids(
                store,
                "Patient",
                f"birthdate={born}&{criterion}",
                visible=None,
                limit=_MOST + 1,
            )
        except GatewayError:
            continue  # a value the search grammar refuses matches nothing
        for candidate in ids:
            if candidate != patient["id"]:
                found.setdefault(candidate, reason)
    return found if len(found) <= _MOST else {}


def note_probable_matches(uow: UnitOfWork, patient: dict[str, Any]) -> int:
    """List, for an operator, the Patients ``patient`` (just written in
    ``uow``) may be the same person as; how many were new."""
    noted = 0
    for candidate_id, reason in _look_alikes(uow, patient).items():
        found = uow.read("Patient", candidate_id)
        if found is None or found.content is None:
            continue
        candidate = fhirjson.loads(found.content)
        if _has_nhs_number(patient) and _has_nhs_number(candidate):
            continue  # two NHS numbers are two people
        first, second = sorted((patient["id"], candidate_id))
        noted += uow.execute(  # a pair listed before is left as it was decided
            "INSERT INTO patient_match (patient_id, candidate_id, reason, found_at, status) "
            "VALUES (?, ?, ?, ?, 'open') ON CONFLICT DO NOTHING",
            [first, second, reason, fhirjson.instant()],
        )
    return noted


def _listed(store: Querier, first: str, second: str) -> bool:
    return bool(
        store.select(
            "SELECT 1 FROM patient_match WHERE patient_id = ? AND candidate_id = ?",
            [first, second],
        )
    )


def probable_matches(store: Querier, status: str | None = "open") -> list[ProbableMatch]:
    """The listed matches (of ``status``, or all), oldest first."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = store.select(
        "SELECT patient_id, candidate_id, reason, found_at, status, decided_by, decided_at "
        f"FROM patient_match {where} ORDER BY found_at, patient_id, candidate_id",
        params,
    )
    return [
        ProbableMatch(*(str(v) if v is not None else None for v in row))  # type: ignore[arg-type]
        for row in rows
    ]


def decide(store: Store, first: str, second: str, status: str, by: str) -> bool:
    """Record an operator's decision on a listed match; whether it was listed."""
    first, second = sorted((first, second))
    if not _listed(store, first, second):
        return False
    with store.unit_of_work() as uow:
        uow.execute(
            "UPDATE patient_match SET status = ?, decided_by = ?, decided_at = ? "
            "WHERE patient_id = ? AND candidate_id = ?",
            [status, by, fhirjson.instant(), first, second],
        )
    return True
