"""What the data says about a person, for the consent rules: the
organisations with a care relationship (PRODUCT.md section 4) and the
person's Consents. Read afresh for each request, so a new registration, an
episode closed or a Consent withdrawn applies to the very next request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from consent.model import ConsentPolicy, Person
from consent.parse import ODS_SYSTEM, Uninterpretable, is_privacy_consent, parse_consent
from gateway import fhirjson
from gateway.errors import InvalidRequest, Unprocessable
from gateway.search.matching import referring_each, with_referring
from gateway.store import Querier, Reader, StoredVersion

RECENT_ENCOUNTER = timedelta(days=30)
_MANY = 1000  # episodes, encounters or Consents of one person read at most
_LINKED = ("EpisodeOfCare", "Encounter", "Consent")


def _load(store: Reader, res_type: str, res_id: str) -> dict[str, Any] | None:
    return _loaded(store.read(res_type, res_id))


def _loaded(found: StoredVersion | None) -> dict[str, Any] | None:
    if found is None or found.deleted or found.content is None:
        return None
    loaded: dict[str, Any] = fhirjson.loads(found.content)
    return loaded


# Organizations read while one person's facts are gathered, by id (``None``:
# not there), so that each is read once.
_Organisations = dict[str, dict[str, Any] | None]


def _ods_identifier(reference: Any) -> dict[str, Any] | None:
    """The ODS identifier a Reference carries, if it carries one."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
        return identifier
    return None


def _code(identifier: dict[str, Any]) -> str | None:
    value = identifier.get("value")
    return str(value).upper() if isinstance(value, str) else None


def _organisation_to_read(reference: Any) -> str | None:
    """The id of the Organization whose identifiers give the ODS code of the
    organisation ``reference`` names; ``None`` when the Reference carries
    the code itself or names no Organization."""
    if not isinstance(reference, dict) or _ods_identifier(reference) is not None:
        return None
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("Organization/"):
        return target.removeprefix("Organization/")
    return None


def named_organisation(reference: Any) -> tuple[str | None, str | None]:
    """How ``reference`` names an organisation, as ``_ods`` reads it: (the
    ODS code it carries, the id of the Organization whose code it is)."""
    if (given := _ods_identifier(reference)) is not None:
        return _code(given), None
    return None, _organisation_to_read(reference)


def _ods(store: Reader, reference: Any, organisations: _Organisations | None = None) -> str | None:
    """The ODS code of an organisation a Reference names, by identifier or by
    reading the Organization it points to (once, into ``organisations``)."""
    if (given := _ods_identifier(reference)) is not None:
        return _code(given)
    res_id = _organisation_to_read(reference)
    if res_id is None:
        return None
    known = {} if organisations is None else organisations
    if res_id not in known:
        known[res_id] = _load(store, "Organization", res_id)
    return ods_of_organisation(known[res_id])


def _read_organisations(
    store: Reader, references: Sequence[Any], organisations: _Organisations
) -> None:
    """Read at once the Organizations that ``_ods`` would read for
    ``references`` one by one."""
    wanted = {
        ("Organization", res_id)
        for reference in references
        if (res_id := _organisation_to_read(reference)) is not None and res_id not in organisations
    }
    found = store.read_many(wanted) if wanted else {}
    for key in wanted:
        organisations[key[1]] = _loaded(found.get(key))


def _contents(versions: list[StoredVersion]) -> list[dict[str, Any]]:
    return [fhirjson.loads(v.content) for v in versions if v.content is not None]


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


def _holds(claim: CareClaim, now: str) -> bool:
    return claim.until is None or (claim.until != UNREADABLE_END and claim.until >= now)


def ods_of_organisation(organisation: dict[str, Any] | None) -> str | None:
    """The ODS code an Organization carries: its first ODS identifier's."""
    for found in (organisation or {}).get("identifier") or []:
        if isinstance(found, dict) and found.get("system") == ODS_SYSTEM:
            return _code(found)
    return None


def relationships(
    store: Querier,
    patient: dict[str, Any],
    now: datetime,
    episodes: list[dict[str, Any]],
    encounters: list[dict[str, Any]],
    organisations: _Organisations | None = None,
) -> frozenset[str]:
    """ODS codes of the organisations caring for the person now: the
    registered GP practice, managers of active EpisodesOfCare (social care,
    residence), and hospitals with an Encounter in progress or ended in the
    last 30 days (``care_claims``). The Organizations named by reference
    only are read at once (into ``organisations``, when given)."""
    moment = fhirjson.instant(now)
    caring = [
        claim.organisation
        for resource in (patient, *episodes, *encounters)
        for claim in care_claims(resource)
        if _holds(claim, moment)
    ]
    known: _Organisations = {} if organisations is None else organisations
    _read_organisations(store, caring, known)
    return frozenset(
        ods for reference in caring if (ods := _ods(store, reference, known)) is not None
    )


def consents(
    store: Querier, raws: list[dict[str, Any]], organisations: _Organisations | None = None
) -> tuple[list[ConsentPolicy], list[str]]:
    """The person's privacy Consents as policies, and the ids of those that
    cannot be interpreted (which withhold the person's data: see consent)."""
    policies: list[ConsentPolicy] = []
    broken: list[str] = []

    def resolve(reference: str) -> str | None:
        return _ods(store, {"reference": reference}, organisations)

    for raw in raws:
        if not is_privacy_consent(raw):
            continue
        try:
            policies.append(parse_consent(raw, resolve))
        except Uninterpretable:
            if raw.get("status") == "active":
                broken.append(str(raw.get("id")))
    return policies, broken


def ensure_interpretable(reader: Reader, resource: dict[str, Any]) -> None:
    """Refuse (422) a privacy Consent the engine could not apply, rather than
    store one that would withhold the person's record from everyone."""
    if not is_privacy_consent(resource):
        return
    try:
        parse_consent(resource, lambda reference: _ods(reader, {"reference": reference}))
    except Uninterpretable as exc:
        raise Unprocessable(
            f"this Consent cannot be applied as written: {exc}", code="GW-0620"
        ) from None


def load_person(store: Querier, patient_id: str, now: datetime | None = None) -> Person | None:
    """The person's facts, or ``None`` if there is no such (live) Patient."""
    # The Patient, and the episodes, encounters and Consents that all name
    # the person by ``patient``: one statement reads them all.
    found, linked = with_referring(store, ("Patient", patient_id), "patient", _LINKED, 3 * _MANY)
    return _person(store, patient_id, found, linked, now or datetime.now(UTC), {})


def load_people(
    store: Querier, patient_ids: Sequence[str], now: datetime | None = None
) -> dict[str, Person | None]:
    """``load_person`` of each of ``patient_ids``, read together (a page of
    search results names many people): two statements for them all, where
    a person with more linked records than one reads is read alone."""
    moment = now or datetime.now(UTC)
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    linked = referring_each(store, "Patient", ids, "patient", _LINKED, 3 * _MANY * len(ids))
    if linked is None:
        return {patient_id: load_person(store, patient_id, moment) for patient_id in ids}
    patients = store.read_many([("Patient", patient_id) for patient_id in ids])
    organisations: _Organisations = {}
    people: dict[str, Person | None] = {}
    for patient_id in ids:
        if len(linked[patient_id]) >= 3 * _MANY:  # as many as one reads: read alone
            people[patient_id] = load_person(store, patient_id, moment)
            continue
        found = patients.get(("Patient", patient_id))
        people[patient_id] = _person(
            store, patient_id, found, linked[patient_id], moment, organisations
        )
    return people


def _person(
    store: Querier,
    patient_id: str,
    found: StoredVersion | None,
    linked: list[StoredVersion],
    now: datetime,
    organisations: _Organisations,
) -> Person | None:
    """The person from their Patient and the records naming them."""
    patient = _loaded(found)
    if patient is None:
        return None
    by_type: dict[str, list[StoredVersion]] = {t: [] for t in _LINKED}
    for version in linked:
        by_type[version.res_type].append(version)
    caring = relationships(
        store,
        patient,
        now,
        _contents(by_type["EpisodeOfCare"]),
        _contents(by_type["Encounter"]),
        organisations,
    )
    policies, broken = consents(store, _contents(by_type["Consent"]), organisations)
    return Person(
        patient_id=patient_id,
        relationships=caring,
        consents=tuple(policies),
        uninterpretable=tuple(broken),
    )


def registered_practices(store: Querier, patient_id: str) -> frozenset[str]:
    """The ODS codes of the GP practices the person is registered with."""
    patient = _load(store, "Patient", patient_id)
    if patient is None:
        return frozenset()
    return frozenset(
        ods for gp in patient.get("generalPractitioner") or [] if (ods := _ods(store, gp))
    )
