"""The review queue: every emergency (ETREAT) access, and every request whose
record a Consent that cannot be applied withheld, waits for a privacy
officer, who marks it reviewed with a note. The review is itself an entry of
the log (so it cannot be quietly undone); ``audit_review`` only says, quickly,
which accesses are done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consent.model import Requester
from gateway import fhirjson
from gateway.audit import log
from gateway.audit.columns import AUDIT_ENTRY_SYSTEM, ENTITY_TYPE, REQUEST_ID_URL, columns_of
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.identifiers import CLIENT_SYSTEM, ODS_SYSTEM
from gateway.store import Querier, Store, as_bytes

_MAX_NOTE = 2000
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


@dataclass(frozen=True)
class Pending:
    index: int
    event: dict[str, Any]
    patients: tuple[str, ...]
    why: str  # "emergency access" or "consent cannot be applied"


def pending(reader: Querier, limit: int = 500) -> list[Pending]:
    """Emergency accesses not yet reviewed, oldest first."""
    rows = reader.select(
        "SELECT e.idx, e.entry, e.emergency FROM audit_entry e "
        "WHERE (e.emergency = ? OR e.alert = ?) AND e.subtype <> 'token' "
        "AND e.subtype <> 'review' "
        "AND NOT EXISTS (SELECT 1 FROM audit_review r WHERE r.idx = e.idx) "
        "ORDER BY e.idx LIMIT ?",
        [True, True, limit],
    )
    found = []
    for index, entry, emergency in rows:
        people = reader.select("SELECT patient_id FROM audit_patient WHERE idx = ?", [index])
        found.append(
            Pending(
                int(str(index)),
                fhirjson.loads(as_bytes(entry)),
                tuple(str(p[0]) for p in people),
                "emergency access" if emergency else "consent cannot be applied",
            )
        )
    return found


def review(store: Store, index: int, reviewer: Requester, note: str, request_id: str) -> int:
    """Mark the emergency access at ``index`` reviewed; the review's own
    index in the log."""
    note = note.strip()
    if not note or len(note) > _MAX_NOTE:
        raise InvalidRequest(
            f"a review needs a note of 1 to {_MAX_NOTE} characters", code="GW-0920"
        )
    with store.unit_of_work() as uow:
        rows = uow.select(
            "SELECT emergency, alert, subtype FROM audit_entry WHERE idx = ?", [index]
        )
        if not rows or not (rows[0][0] or rows[0][1]) or rows[0][2] in ("token", "review"):
            raise NotFound(f"entry {index} is not waiting for review", code="GW-0921")
        if uow.select("SELECT 1 FROM audit_review WHERE idx = ?", [index]):
            raise Conflict(f"emergency access {index} has already been reviewed", code="GW-0922")
        now = fhirjson.instant()
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "extension": [{"url": REQUEST_ID_URL, "valueString": request_id}],
            "type": {
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "110100",
                "display": "Application Activity",
            },
            "subtype": [
                {
                    "system": "urn:london-care-gateway:audit",
                    "code": "review",
                    "display": "Emergency access reviewed",
                }
            ],
            "action": "U",
            "recorded": now,
            "outcome": "0",
            "outcomeDesc": note,
            "agent": [
                {
                    "who": {
                        "identifier": {
                            "system": CLIENT_SYSTEM,
                            "value": reviewer.client_id,
                        },
                        "display": reviewer.client_name,
                    },
                    "requestor": True,
                    "purposeOfUse": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                    "code": reviewer.purpose,
                                }
                            ]
                        }
                    ],
                }
            ],
            "source": {"site": "london-care-gateway"},
            "entity": [
                {
                    "what": {
                        "identifier": {
                            "system": AUDIT_ENTRY_SYSTEM,
                            "value": str(index),
                        }
                    }
                }
            ],
        }
        # The people of the entry reviewed, as its signed entry names them,
        # and the reviewer's organisation: the review's own columns are read
        # from what it says (``columns.columns_of``).
        reviewed = log.entry(uow, index)
        people = columns_of(reviewed).patients if reviewed is not None else ()
        event["agent"].append(
            {
                "type": {"text": reviewer.kind},
                "who": {
                    "identifier": {"system": ODS_SYSTEM, "value": reviewer.org_ods},
                    "display": reviewer.org_name,
                },
                "requestor": False,
            }
        )
        event["entity"] += [
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
            for patient_id in people
        ]
        (review_index,) = log.append(uow, [log.AuditRecord(event)])
        uow.execute(
            "INSERT INTO audit_review (idx, review_idx, reviewer, reviewed_at, note) "
            "VALUES (?, ?, ?, ?, ?)",
            [index, review_index, reviewer.client_id, now, note],
        )
    return review_index
