"""What a resource says about who cares for its person: the registered GP
practice, the manager of an active episode, the provider of a current or
recent Encounter, and how a Reference names an organisation. The one reading
of these rules: a decision (``gateway.access.people``) and the search
pre-filter's index (``gateway.access.index``) both use it, and the index's
fingerprint covers this module, so a changed rule rebuilds the index."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from consent.parse import ODS_SYSTEM
from gateway import fhirjson
from gateway.errors import InvalidRequest

RECENT_ENCOUNTER = timedelta(days=30)


def ods_identifier(reference: Any) -> dict[str, Any] | None:
    """The ODS identifier a Reference carries, if it carries one."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
        return identifier
    return None


def code_of(identifier: dict[str, Any]) -> str | None:
    value = identifier.get("value")
    return str(value).upper() if isinstance(value, str) else None


def organisation_to_read(reference: Any) -> str | None:
    """The id of the Organization whose identifiers give the ODS code of the
    organisation ``reference`` names; ``None`` when the Reference carries
    the code itself or names no Organization."""
    if not isinstance(reference, dict) or ods_identifier(reference) is not None:
        return None
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("Organization/"):
        return target.removeprefix("Organization/")
    return None


def named_organisation(reference: Any) -> tuple[str | None, str | None]:
    """How ``reference`` names an organisation, as ``_ods`` reads it: (the
    ODS code it carries, the id of the Organization whose code it is)."""
    if (given := ods_identifier(reference)) is not None:
        return code_of(given), None
    return None, organisation_to_read(reference)


class CareClaim(NamedTuple):
    """One organisation a resource says cares for its person: the Reference
    naming it, and until when (``None``: for as long as the resource says
    so; a finished Encounter's claim lapses ``RECENT_ENCOUNTER`` after it)."""

    organisation: Any
    until: str | None


# An Encounter's end that cannot be read: its claim is kept for the search
# pre-filter (which must keep whatever might be shown) and never counts as
# recent for a decision.
UNREADABLE_END = "unreadable"


def care_claims(resource: dict[str, Any]) -> list[CareClaim]:
    """The care relationships a Patient, EpisodeOfCare or Encounter states:
    the registered GP practice, the manager of an active episode (social
    care, residence), the provider of an Encounter in progress or finished.
    The one reading of these rules: a decision (``relationships``) and the
    search pre-filter's index (``gateway.access.index``) both use it."""
    res_type = resource.get("resourceType")
    if res_type == "Patient":
        return [CareClaim(gp, None) for gp in resource.get("generalPractitioner") or []]
    if res_type == "EpisodeOfCare":
        if resource.get("status") == "active":
            return [CareClaim(resource.get("managingOrganization"), None)]
        return []
    if res_type == "Encounter":
        status = resource.get("status")
        provider = resource.get("serviceProvider")
        if status == "in-progress":
            return [CareClaim(provider, None)]
        ended = (resource.get("period") or {}).get("end")
        if status == "finished" and isinstance(ended, str):
            try:
                until = fhirjson.instant(fhirjson.parse_instant(ended) + RECENT_ENCOUNTER)
            except (InvalidRequest, ValueError, OverflowError):
                until = UNREADABLE_END
            return [CareClaim(provider, until)]
    return []


def holds(claim: CareClaim, now: str) -> bool:
    """Whether ``claim`` stands at the instant ``now``."""
    return claim.until is None or (claim.until != UNREADABLE_END and claim.until >= now)


def ods_of_organisation(organisation: dict[str, Any] | None) -> str | None:
    """The ODS code an Organization carries: its first ODS identifier's."""
    for found in (organisation or {}).get("identifier") or []:
        if isinstance(found, dict) and found.get("system") == ODS_SYSTEM:
            return code_of(found)
    return None
