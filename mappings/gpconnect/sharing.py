"""The person's sharing preference for local shared care records, as English
GP systems record it: SNOMED CT coded entries (refused, or given, consent
for upload to the local shared electronic record) that a structured record
carries as Observations, usually under uncategorised data. The Observations
are carried as they are; this reads them once more for the one privacy
Consent they add up to.

The latest entry decides. A refusal is a dissent from sharing altogether:
an active Consent whose provision denies with no actor and no purpose, so
the consent rules withhold the person's records from everyone but the
organisations that wrote them, while emergency access (ETREAT), which the
dissent does not name, still applies. Consent given after a refusal is the
same Consent, inactive: a later response withdraws the dissent an earlier
one wrote. Consent given without any refusal writes nothing, as implied
consent is the default.

https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import (
    CONSENT_SCOPE,
    PATIENT_CONSENT,
    SHARED_RECORD_POLICY,
    SHARING_GIVEN,
    SHARING_REFUSED,
)
from mappings.gpconnect.elements import concept
from mappings.gpconnect.references import Record
from mappings.identity import mapped_id
from mappings.ukcore import LOINC, SNOMED, organisation

# The key of the one Consent per person the practice's entries make.
CONSENT_KEY = "shared-record-preference"
_XHTML = "http://www.w3.org/1999/xhtml"
_LONDON = ZoneInfo("Europe/London")
_UNDATED = datetime.min.replace(tzinfo=UTC)
# Entries the GP system says are not (or no longer) true.
_VOID = frozenset({"entered-in-error", "cancelled"})


@dataclass(frozen=True)
class Entry:
    """One coded entry of the preference: refused or given, and when."""

    item: Item
    refused: bool
    date: str | None  # as sent: the effective time, else the time issued

    @property
    def term(self) -> tuple[str, str]:
        return SHARING_REFUSED if self.refused else SHARING_GIVEN

    def order(self) -> tuple[datetime, datetime, bool]:
        """Later entries sort last: by effective time, then the time issued;
        on a tie a refusal is taken as the later (the reading that protects
        the person). An entry with no date sorts first."""
        source = self.item.resource
        effective = source.get("effectiveDateTime") or (source.get("effectivePeriod") or {}).get(
            "start"
        )
        return (
            _moment(effective) or _moment(source.get("issued")) or _UNDATED,
            _moment(source.get("issued")) or _UNDATED,
            self.refused,
        )


def _moment(text: Any) -> datetime | None:
    """A FHIR date or dateTime as the moment it starts; one without an
    offset is London time, as in the other mappings."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 4:
            found = datetime(int(text), 1, 1)
        elif len(text) == 7:
            found = datetime(int(text[:4]), int(text[5:7]), 1)
        else:
            found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=_LONDON)


def _date(source: Json) -> str | None:
    for found in (
        source.get("effectiveDateTime"),
        (source.get("effectivePeriod") or {}).get("start"),
        source.get("issued"),
    ):
        if isinstance(found, str) and found:
            return found
    return None


def entries(record: Record) -> list[Entry]:
    """The response's entries of the preference, oldest first; those
    entered in error or cancelled are left out."""
    found = []
    for item in record.response.of_type("Observation"):
        source = item.resource
        if source.get("status") in _VOID:
            continue
        codes = {
            coding.get("code")
            for coding in (source.get("code") or {}).get("coding") or []
            if coding.get("system") == SNOMED
        }
        if SHARING_REFUSED[0] in codes:
            found.append(Entry(item, True, _date(source)))
        elif SHARING_GIVEN[0] in codes:
            found.append(Entry(item, False, _date(source)))
    return sorted(found, key=Entry.order)


def consent_id(record: Record) -> str:
    """The one Consent per person the practice's entries make."""
    return mapped_id(record.source, "Consent", f"{CONSENT_KEY}|{record.patient_basis}")


def _said(entry: Entry, where: str) -> str:
    code, term = entry.term
    when = f" on {entry.date}" if entry.date else ""
    return f"{term} (SNOMED CT {code}), recorded by {where}{when}"


def _narrative(*paragraphs: str) -> Json:
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return {"status": "additional", "div": f'<div xmlns="{_XHTML}">{body}</div>'}


def sharing_consent(record: Record, practice_name: str | None) -> Json | None:
    """The person's Consent to sharing through the local shared care record,
    as the latest entry says; ``None`` when the response has no entry, or
    only entries giving consent (implied consent is the default)."""
    found = entries(record)
    refusals = [entry for entry in found if entry.refused]
    if not refusals:
        return None
    latest = found[-1]
    where = f"{practice_name} ({record.source})" if practice_name else record.source
    if latest.refused:
        status = "active"
        words = [
            "Dissent from sharing through the local shared care record.",
            f"{_said(latest, where)}.",
        ]
    else:
        status = "inactive"
        words = [
            "Dissent from sharing through the local shared care record, withdrawn.",
            f"{_said(latest, where)}, after: {_said(refusals[-1], where)}.",
        ]
    consent: Json = {
        "resourceType": "Consent",
        "id": consent_id(record),
        "text": _narrative(*words),
        "status": status,
        "scope": concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [concept(LOINC, *PATIENT_CONSENT)],
        "patient": record.subject(),
    }
    if latest.date:
        consent["dateTime"] = latest.date
    consent["performer"] = [record.subject()]
    consent["organization"] = [organisation(record.source, practice_name)]
    consent["policyRule"] = {"text": SHARED_RECORD_POLICY}
    # A dissent from sharing altogether: no actor, no purpose, no class.
    consent["provision"] = {"type": "deny"}
    return consent
