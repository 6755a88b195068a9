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

from typing import Any, NamedTuple

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


class Columns(NamedTuple):
    """The columns in ``NAMES`` order (``values()``), then the people."""

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
    unstated: frozenset[str] = frozenset()

    def values(self) -> tuple[object, ...]:
        """The column values in ``NAMES`` order."""
        return self[:9]


class NotAnAuditEntry(ValueError):
    """Bytes that are not a JSON AuditEvent as the log writes them."""


def _code(concepts: Any) -> str | None:
    """The first coding's code of the first CodeableConcept in a list."""
    for concept in concepts or ():
        for coding in concept.get("coding") or ():
            return _text(coding.get("code"))
    return None


def _text(value: Any) -> str | None:
    if type(value) is str:
        return value
    # A str subclass (an enum) in an event not yet serialised is, in its
    # canonical JSON, a plain string: read it as that.
    return str.__str__(value) if isinstance(value, str) else None


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
    """``columns_of`` an entry already parsed, or an event of JSON values
    about to be serialised as its canonical JSON (``log.AuditRecord``, which
    so spares appending a parse): the same derivation."""
    try:
        return _columns(event)
    except KeyError as exc:  # an object where a list belongs
        raise NotAnAuditEntry(
            f"not shaped as the log writes AuditEvents: no element {exc}"
        ) from None
    except (AttributeError, TypeError, IndexError, ValueError) as exc:
        raise NotAnAuditEntry(f"not shaped as the log writes AuditEvents: {exc}") from None


# ``log.verify`` derives the columns of every entry of the log: this is its
# inner loop, so it reads each element once, and only where it is needed.


def _columns(event: dict[str, Any]) -> Columns:
    get = event.get
    kind = (get("type") or {}).get("code")
    if kind == _DCM_LOGIN:
        subtype = "token"
    elif kind == _DCM_IMPORT:
        subtype = "load"
    else:
        subtypes = get("subtype") or ()
        subtype = (_text(subtypes[0].get("code")) if subtypes else None) or ""
    review = subtype == "review"
    request_id = None
    for extension in get("extension") or ():
        if extension.get("url") == REQUEST_ID_URL:
            request_id = _text(extension.get("valueString"))
            break
    # The first agent identified by an ODS code, the first by a client id,
    # and the first requesting agent's purpose of use.
    org_ods = client_id = requestor_purpose = None
    found_org = found_client = found_requestor = False
    for agent in get("agent") or ():
        identifier = (agent.get("who") or {}).get("identifier") or {}
        system = identifier.get("system")
        if system == ODS_SYSTEM and not found_org:
            found_org, org_ods = True, _text(identifier.get("value"))
        elif system == CLIENT_SYSTEM and not found_client:
            found_client, client_id = True, _text(identifier.get("value"))
        if not found_requestor and agent.get("requestor") is True:
            found_requestor, requestor_purpose = True, _code(agent.get("purposeOfUse"))
    stated_purpose = _code(get("purposeOfEvent"))
    purpose = stated_purpose if stated_purpose is not None else requestor_purpose
    outcome = _text(get("outcome")) or ""
    patients: set[str] = set()
    alert = False
    reviewed: int | None = None
    for entity in get("entity") or ():
        kind_of = entity.get("type") or {}
        if kind_of.get("code") == "1" and kind_of.get("system") == ENTITY_TYPE:
            reference = _text((entity.get("what") or {}).get("reference")) or ""
            if reference.startswith("Patient/"):
                patients.add(reference[8:])
        elif entity.get("description") == "consent decision":
            alert = alert or any(
                detail.get("type") == "rule" and detail.get("valueString") == UNINTERPRETABLE
                for detail in entity.get("detail") or ()
            )
        if review:
            identifier = (entity.get("what") or {}).get("identifier")
            if identifier and identifier.get("system") == AUDIT_ENTRY_SYSTEM:
                value = _text(identifier.get("value")) or ""
                reviewed = int(value) if value.isdigit() else None
    return Columns._make(  # in the fields' order: a third of the cost of keywords
        (
            _text(get("recorded")) or "",
            request_id,
            org_ods,
            None if client_id == NO_CLIENT else client_id,
            purpose,
            subtype,
            outcome,
            stated_purpose == "ETREAT"  # emergency
            or (subtype == "token" and purpose == "ETREAT" and outcome == "0"),
            alert,
            tuple(sorted(patients)) if len(patients) > 1 else tuple(patients),
            reviewed if review and not patients else None,  # patients_of
            _ORG_UNSTATED if review and org_ods is None else _NOTHING,  # unstated
        )
    )


_ORG_UNSTATED = frozenset({"org_ods"})
_NOTHING: frozenset[str] = frozenset()
