"""AuditEvents shaped after IHE Basic Audit Log Patterns (BALP): one per
request that touches a person's data, naming who asked (client,
organisation, purpose, break-glass reason), what they did, whose record it
was, what was shown and what withheld, and the rule or Consent that decided.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consent.model import Decision, Requester
from gateway.audit.columns import NO_CLIENT, REQUEST_ID_URL
from gateway.audit.log import AuditRecord
from gateway.identifiers import CLIENT_SYSTEM
from gateway.identifiers import ODS_SYSTEM as ODS

BREAK_GLASS_URL = "urn:london-care-gateway:break-glass-reason"
_REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "search-type": "R",
    "search-system": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
}


@dataclass
class Disclosures:
    """What one request's consent decisions said: the people whose records
    were touched, and each (rule, Consent, provision, permit) with its count."""

    patients: set[str] = field(default_factory=set)
    decisions: Counter[tuple[str, str | None, str | None, bool]] = field(default_factory=Counter)
    written: list[str] = field(default_factory=list)  # versions the request wrote
    # Documents the request built: (identifier, title, the versions in it).
    documents: list[tuple[str, str, list[str]]] = field(default_factory=list)
    # The answer, or an entry of it, found nothing to show (a search or
    # history page with nothing in it, a batch entry answered 404): it waits
    # out the not-found floor as a 404 does, so that what was read and
    # withheld on the way does not show in its timing.
    found_nothing: bool = False
    # The interaction, where the route alone does not tell it (a Bundle is a
    # batch or a transaction).
    interaction: str | None = None
    # Entries already written in the unit of work of the writes they name
    # (``logged``): the request's own entry then covers only what came after.
    logged_entries: int = 0

    def sent(self, identifier: str, title: str, entries: list[str]) -> None:
        """Note a document built for the requester and what was in it."""
        self.documents.append((identifier, title, entries))

    def wrote(self, reference: str, patient_id: str | None) -> None:
        self.written.append(reference)
        if patient_id:
            self.patients.add(patient_id)

    def add(self, patient_id: str | None, decision: Decision) -> None:
        if patient_id:
            self.patients.add(patient_id)
        self.decisions[
            (decision.rule, decision.consent_id, decision.provision, decision.permit)
        ] += 1

    @property
    def shown(self) -> int:
        return sum(n for (_, _, _, permit), n in self.decisions.items() if permit)

    @property
    def withheld(self) -> int:
        return sum(n for (_, _, _, permit), n in self.decisions.items() if not permit)

    @property
    def pending(self) -> bool:
        """Whether anything is noted that no entry has named yet."""
        return bool(self.patients or self.decisions or self.written or self.documents)

    def logged(self) -> None:
        """What is noted so far is in an entry written with the writes it
        names: start afresh for what the request does after."""
        self.patients.clear()
        self.decisions.clear()
        self.written.clear()
        self.documents.clear()
        self.logged_entries += 1


# The route handler (gateway.http.routes) that served a request: its
# interaction (http://hl7.org/fhir/restful-interaction).
_SUBTYPES = {
    "read": "read",
    "vread": "vread",
    "create": "create",
    "update": "update",
    "conditional_update": "update",
    "patch": "patch",
    "conditional_patch": "patch",
    "delete": "delete",
    "search_type": "search-type",
    "search_by_post": "search-type",
    "compartment_search": "search-type",
    "search_system": "search-system",
    "instance_history": "history-instance",
    "type_history": "history-type",
    "system_history": "history-system",
    "batch_or_transaction": "batch",  # or "transaction": Disclosures.interaction
    "patient_everything": "operation",
    "access_check": "operation",
    "access_report": "operation",
    "validate": "operation",
    "ingest": "operation",
    "patient_document": "operation",
    "subscription_status": "operation",
    "subscription_events": "operation",
}


def subtype_of(endpoint: str) -> str:
    """The interaction a route handler serves (``operation`` for the rest)."""
    return _SUBTYPES.get(endpoint, "operation")


def _outcome(status: int) -> str:
    """BALP outcome codes: 0 success, 4 minor failure (the caller's), 8 serious
    failure (the gateway's)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _purpose(asker: Requester) -> list[dict[str, Any]]:
    return [{"coding": [{"system": _ACT_REASON, "code": asker.purpose}]}]


def _agents(asker: Requester) -> list[dict[str, Any]]:
    """The client asking (with its purpose, and a break-glass reason given),
    then its organisation: the order the access report reads them in."""
    client: dict[str, Any] = {
        "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
        "who": {
            "identifier": {"system": CLIENT_SYSTEM, "value": asker.client_id},
            "display": asker.client_name,
        },
        "requestor": True,
        "purposeOfUse": _purpose(asker),
    }
    if asker.reason:
        client["extension"] = [{"url": BREAK_GLASS_URL, "valueString": asker.reason}]
    organisation = {
        "type": {"text": asker.kind},
        "who": {"identifier": {"system": ODS, "value": asker.org_ods}, "display": asker.org_name},
        "requestor": False,
    }
    return [client, organisation]


def _people(patient_ids: Iterable[str]) -> list[dict[str, Any]]:
    """An entity for each person named (once each, in order of id)."""
    return [
        {
            "what": {"reference": f"Patient/{patient_id}"},
            "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for patient_id in sorted(set(patient_ids))
    ]


def _versions(references: Iterable[str]) -> list[dict[str, Any]]:
    """An entity for each version (``Type/id/_history/n``) written or told of."""
    return [
        {
            "what": {"reference": reference},
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        }
        for reference in references
    ]


def request_event(
    *,
    recorded: str,
    subtype: str,
    status: int | None,
    asker: Requester,
    request_id: str,
    method: str,
    path: str,
    query: str,
    disclosures: Disclosures,
) -> AuditRecord:
    """The AuditEvent of one FHIR request; with no ``status``, of the part of
    it that a unit of work committed (a write: written in that unit of work,
    before the answer's status is known)."""
    outcome = _outcome(status) if status is not None else "0"
    entities = _people(disclosures.patients)
    target = f"{path}?{query}" if query else path
    entities.append(
        {
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": f"{method} {path}",
            "query": base64.b64encode(target.encode()).decode(),
            "detail": [
                {"type": "shown", "valueString": str(disclosures.shown)},
                {"type": "withheld", "valueString": str(disclosures.withheld)},
            ],
        }
    )
    entities += _versions(disclosures.written)
    for identifier, title, contents in disclosures.documents:
        entities.append(
            {
                "what": {"identifier": {"system": "urn:ietf:rfc:3986", "value": identifier}},
                "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": _OBJECT_ROLE, "code": "3", "display": "Report"},
                "description": title,
                "detail": [{"type": "entry", "valueString": entry} for entry in contents],
            }
        )
    for (rule, consent_id, provision, permit), count in sorted(
        disclosures.decisions.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][3])
    ):
        decision: dict[str, Any] = {
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "description": "consent decision",
            "detail": [
                {"type": "rule", "valueString": rule},
                {"type": "decision", "valueString": "permit" if permit else "deny"},
                {"type": "count", "valueString": str(count)},
            ],
        }
        if consent_id:
            decision["what"] = {"reference": f"Consent/{consent_id}"}
            decision["detail"].append({"type": "provision", "valueString": provision or ""})
        entities.append(decision)
    event = {
        "resourceType": "AuditEvent",
        "extension": [{"url": REQUEST_ID_URL, "valueString": request_id}],
        "type": _REST,
        "subtype": [{"system": _INTERACTION, "code": subtype}],
        "action": ACTIONS.get(subtype, "E"),
        "recorded": recorded,
        "outcome": outcome,
        "outcomeDesc": f"HTTP {status}" if status is not None else "committed",
        "purposeOfEvent": _purpose(asker),
        "agent": _agents(asker),
        "source": {
            "site": "london-care-gateway",
            "observer": {"display": "London care gateway"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }
    return AuditRecord(event)


def token_event(
    *,
    recorded: str,
    request_id: str,
    client_id: str | None,
    purpose: str | None,
    reason: str | None,
    granted: str | None,
    error: str | None,
) -> AuditRecord:
    """The AuditEvent of a token request: issued (with the scope granted) or
    refused (with the OAuth error). The client is the one the request
    claimed to be: a refused one may not be who it says."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
        "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client_id or NO_CLIENT}},
        "requestor": True,
    }
    if purpose:
        agent["purposeOfUse"] = [{"coding": [{"system": _ACT_REASON, "code": purpose}]}]
    if reason:
        agent["extension"] = [{"url": BREAK_GLASS_URL, "valueString": reason}]
    outcome = "0" if error is None else "4"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "extension": [{"url": REQUEST_ID_URL, "valueString": request_id}],
        "type": {"system": _DCM, "code": "110114", "display": "User Authentication"},
        "subtype": [{"system": _DCM, "code": "110122", "display": "Login"}],
        "action": "E",
        "recorded": recorded,
        "outcome": outcome,
        "outcomeDesc": f"token issued: {granted}" if error is None else f"token refused: {error}",
        "agent": [agent],
        "source": {"site": "london-care-gateway", "observer": {"display": "London care gateway"}},
    }
    return AuditRecord(event)


def load_event(
    *,
    recorded: str,
    org_ods: str,
    org_name: str,
    client_id: str,
    client_name: str,
    written: list[tuple[str, str | None]],
) -> AuditRecord:
    """The AuditEvent of the gateway loading a source's records as that
    source (a file, an MLLP feed, an operator's merge): DICOM's Import,
    naming the source organisation, the loader, the people whose records
    were written and each version (``written``: reference and person)."""
    entities = _people(person for _, person in written if person)
    entities += _versions(reference for reference, _ in written)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": _DCM, "code": "110107", "display": "Import"},
        "subtype": [{"system": _DCM, "code": "110107", "display": "Import"}],
        "action": "C",
        "recorded": recorded,
        "outcome": "0",
        "agent": [
            {
                "type": {"text": "source"},
                "who": {
                    "identifier": {"system": ODS, "value": org_ods},
                    "display": org_name,
                },
                "requestor": True,
            },
            {
                "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
                "who": {
                    "identifier": {"system": CLIENT_SYSTEM, "value": client_id},
                    "display": client_name,
                },
                "requestor": False,
            },
        ],
        "source": {"site": "london-care-gateway", "observer": {"display": "London care gateway"}},
        "entity": entities,
    }
    return AuditRecord(event)


NOTIFICATION_SUBTYPE = {"system": "urn:london-care-gateway:audit-subtype", "code": "notification"}


def notification_event(
    *,
    recorded: str,
    recipient: Requester,
    subscription_id: str,
    channel: str,
    numbers: tuple[int, int],
    delivered: list[tuple[str, str | None]],
) -> AuditRecord:
    """The AuditEvent of notifications delivered to a subscriber (sent on
    its channel and acknowledged, or fetched with ``$events``): DICOM's
    Export, naming the recipient organisation and client, the Subscription,
    the event numbers, the people and each version told of (``delivered``:
    reference and person). The access report lists it as the recipient's
    access to each person's record."""
    first, last = numbers
    entities = _people(person for _, person in delivered if person)
    entities.append(
        {
            "what": {"reference": f"Subscription/{subscription_id}"},
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": f"notifications {first} to {last} by {channel}",
            "detail": [
                {"type": "shown", "valueString": str(len(delivered))},
                {"type": "withheld", "valueString": "0"},
            ],
        }
    )
    entities += _versions(reference for reference, _ in delivered)
    return _export(NOTIFICATION_SUBTYPE, recorded, recipient, entities)


def _export(
    subtype: dict[str, str], recorded: str, recipient: Requester, entities: list[dict[str, Any]]
) -> AuditRecord:
    """An AuditEvent of records sent out of the gateway (DICOM's Export) to
    ``recipient``, of ``subtype``, naming ``entities``."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": _DCM, "code": "110106", "display": "Export"},
        "subtype": [subtype],
        "action": "R",
        "recorded": recorded,
        "outcome": "0",
        "purposeOfEvent": _purpose(recipient),
        "agent": _agents(recipient),
        "source": {"site": "london-care-gateway", "observer": {"display": "London care gateway"}},
        "entity": entities,
    }
    return AuditRecord(event)


EXPORT_SUBTYPE = {"system": "urn:london-care-gateway:audit-subtype", "code": "bulk-export"}
EXPORT_SYSTEM = "urn:london-care-gateway:export"
# What each secondary-use purpose's export is called in a person's access report.
EXPORT_KIND = {
    "POPHLTH": "population health",
    "HOPERAT": "health care operations",
    "HRESCH": "research",
}


def export_event(
    *,
    recorded: str,
    asker: Requester,
    export_id: str,
    project: str,
    people: Sequence[str],
    part: tuple[int, int],
) -> AuditRecord:
    """An AuditEvent of a bulk export (DICOM's Export, subtype
    ``bulk-export``): the requester, the export and its project, and
    ``people``, some of the people a record of whom it wrote (``part``: this
    entry's number among the export's entries, and how many there are). A
    person's access report lists it as their inclusion in the export."""
    number, of = part
    entities = _people(people)
    entities.append(
        {
            "what": {"identifier": {"system": EXPORT_SYSTEM, "value": export_id}},
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
            "description": (
                f"included in {EXPORT_KIND.get(asker.purpose, 'secondary use')} export {export_id}"
            ),
            "detail": [
                {"type": "export", "valueString": export_id},
                {"type": "project", "valueString": project},
                {"type": "people", "valueString": str(len(set(people)))},
                {"type": "part", "valueString": f"{number} of {of}"},
            ],
        }
    )
    return _export(EXPORT_SUBTYPE, recorded, asker, entities)
