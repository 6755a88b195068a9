"""What an audit entry's side columns must say, read from the signed entry.

The columns of ``audit_entry`` (``recorded``, ``request_id``, ``org_ods``,
``client_id``, ``purpose``, ``subtype``, ``outcome``, ``emergency``,
``alert``) and the rows of ``audit_patient`` are what auditors filter on:
the review queue, a person's access report, ``AuditEvent?emergency=true``.
They are not covered by the Merkle tree, so nothing in them may be a fact of
its own: ``columns_of`` derives every one of them from the entry's canonical
JSON, ``log.append`` stores exactly what it derives, and ``log.verify``
derives them again and names any column or row that says otherwise.

How each is read from the AuditEvent:

- ``recorded``, ``outcome``: the elements of those names.
- ``request_id``: the extension ``urn:london-care-gateway:request-id``.
- ``org_ods`` / ``client_id``: the first agent identified by an ODS code /
  a client id (a token request that named no client says ``(none given)``,
  stored as no client).
- ``purpose``: ``purposeOfEvent``, else the requesting agent's
  ``purposeOfUse``.
- ``subtype``: ``token`` for a User Authentication, ``load`` for an Import,
  else the first ``subtype`` code (the REST interaction, or ``review``).
- ``emergency``: ``purposeOfEvent`` is ETREAT; for a token, a token issued
  for ETREAT.
- ``alert``: a consent decision entity whose rule is
  ``consent-uninterpretable``.
- the patients: the entities of type Person (``Patient/<id>``). A review
  written before reviews named their people names only the entry it
  reviews: its people are that entry's (``patients_of``).

Reviews written before reviews named the reviewer's organisation do not
state it: that one column is not checked for them (``unstated``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.identifiers import CLIENT_SYSTEM, ODS_SYSTEM

REQUEST_ID_URL = "urn:london-care-gateway:request-id"
AUDIT_ENTRY_SYSTEM = "urn:london-care-gateway:audit-entry"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
NO_CLIENT = "(none given)"
UNINTERPRETABLE = "consent-uninterpretable"
_DCM_LOGIN = "110114"  # User Authentication
_DCM_IMPORT = "110107"

# The columns of audit_entry after idx, in the order log.append writes them.
NAMES = (
    "recorded",
    "request_id",
    "org_ods",
    "client_id",
    "purpose",
    "subtype",
    "outcome",
    "emergency",
    "alert",
)


@dataclass(frozen=True)
class Columns:
    recorded: str
    request_id: str | None
    org_ods: str | None
    client_id: str | None
    purpose: str | None
    subtype: str
    outcome: str
    emergency: bool
    alert: bool
    patients: tuple[str, ...]  # sorted, distinct
    # An old review naming no Person: its people are those of this entry.
    patients_of: int | None = None
    # Columns the entry does not state (old reviews' org_ods): not checked.
    unstated: frozenset[str] = field(default_factory=frozenset)

    def values(self) -> tuple[object, ...]:
        """The column values in ``NAMES`` order."""
        return (
            self.recorded,
            self.request_id,
            self.org_ods,
            self.client_id,
            self.purpose,
            self.subtype,
            self.outcome,
            self.emergency,
            self.alert,
        )


class NotAnAuditEntry(ValueError):
    """Bytes that are not a JSON AuditEvent as the log writes them."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _code(concepts: Any) -> str | None:
    """The first coding's code of the first CodeableConcept in a list."""
    for concept in _list(concepts):
        for coding in _list(_dict(concept).get("coding")):
            return _str(_dict(coding).get("code"))
    return None


def _agent_identified(agents: list[Any], system: str) -> str | None:
    for agent in agents:
        identifier = _dict(_dict(_dict(agent).get("who")).get("identifier"))
        if identifier.get("system") == system:
            return _str(identifier.get("value"))
    return None


def columns_of(entry: bytes) -> Columns:
    """The columns and people the signed ``entry`` (canonical JSON) says."""
    try:
        event = orjson.loads(entry)
    except orjson.JSONDecodeError as exc:
        raise NotAnAuditEntry(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise NotAnAuditEntry("not a JSON object")
    return columns_of_event(event)


def columns_of_event(event: dict[str, Any]) -> Columns:
    """``columns_of`` an entry already parsed (the same derivation)."""
    agents = _list(event.get("agent"))
    kind = _str(_dict(event.get("type")).get("code"))
    if kind == _DCM_LOGIN:
        subtype = "token"
    elif kind == _DCM_IMPORT:
        subtype = "load"
    else:
        subtype = _str(_dict(next(iter(_list(event.get("subtype"))), None)).get("code")) or ""
    request_id = None
    for extension in _list(event.get("extension")):
        if _dict(extension).get("url") == REQUEST_ID_URL:
            request_id = _str(_dict(extension).get("valueString"))
            break
    stated_purpose = _code(event.get("purposeOfEvent"))
    purpose = stated_purpose
    if purpose is None:
        for agent in agents:
            if _dict(agent).get("requestor") is True:
                purpose = _code(_dict(agent).get("purposeOfUse"))
                break
    outcome = _str(event.get("outcome")) or ""
    emergency = stated_purpose == "ETREAT" or (
        subtype == "token" and purpose == "ETREAT" and outcome == "0"
    )
    client_id = _agent_identified(agents, CLIENT_SYSTEM)
    patients: set[str] = set()
    alert = False
    reviewed: int | None = None
    for entity in _list(event.get("entity")):
        entity = _dict(entity)
        what = _dict(entity.get("what"))
        kind_of = _dict(entity.get("type"))
        if kind_of.get("system") == ENTITY_TYPE and kind_of.get("code") == "1":
            reference = _str(what.get("reference")) or ""
            if reference.startswith("Patient/"):
                patients.add(reference.removeprefix("Patient/"))
        elif entity.get("description") == "consent decision":
            alert = alert or any(
                _dict(detail).get("type") == "rule"
                and _dict(detail).get("valueString") == UNINTERPRETABLE
                for detail in _list(entity.get("detail"))
            )
        identifier = _dict(what.get("identifier"))
        if identifier.get("system") == AUDIT_ENTRY_SYSTEM:
            value = _str(identifier.get("value")) or ""
            reviewed = int(value) if value.isdigit() else None
    org_ods = _agent_identified(agents, ODS_SYSTEM)
    unstated: frozenset[str] = frozenset()
    if subtype == "review" and org_ods is None:
        unstated = frozenset({"org_ods"})
    return Columns(
        recorded=_str(event.get("recorded")) or "",
        request_id=request_id,
        org_ods=org_ods,
        client_id=None if client_id == NO_CLIENT else client_id,
        purpose=purpose,
        subtype=subtype,
        outcome=outcome,
        emergency=emergency,
        alert=alert,
        patients=tuple(sorted(patients)),
        patients_of=reviewed if subtype == "review" and not patients else None,
        unstated=unstated,
    )
