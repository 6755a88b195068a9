"""What the data says about a person, for the consent rules: the
organisations with a care relationship (PRODUCT.md section 4) and the
person's Consents. Read afresh for each request, so a new registration, an
episode closed or a Consent withdrawn applies to the very next request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from consent.model import ConsentPolicy, Person
from consent.parse import ODS_SYSTEM, Uninterpretable, is_privacy_consent, parse_consent
from gateway import fhirjson
from gateway.errors import Unprocessable
from gateway.search.matching import referring
from gateway.store import Querier, Reader, StoredVersion

RECENT_ENCOUNTER = timedelta(days=30)
_MANY = 1000  # episodes, encounters or Consents of one person read at most
_LINKED = ("EpisodeOfCare", "Encounter", "Consent")


def _load(store: Reader, res_type: str, res_id: str) -> dict[str, Any] | None:
    found = store.read(res_type, res_id)
    if found is None or found.deleted or found.content is None:
        return None
    loaded: dict[str, Any] = fhirjson.loads(found.content)
    return loaded


def _ods(store: Reader, reference: Any) -> str | None:
    """The ODS code of an organisation a Reference names, by identifier or by
    reading the Organization it points to."""
    if not isinstance(reference, dict):
        return None
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
        value = identifier.get("value")
        return str(value).upper() if isinstance(value, str) else None
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("Organization/"):
        organisation = _load(store, "Organization", target.removeprefix("Organization/"))
        for found in (organisation or {}).get("identifier") or []:
            if isinstance(found, dict) and found.get("system") == ODS_SYSTEM:
                value = found.get("value")
                return str(value).upper() if isinstance(value, str) else None
    return None


def _contents(versions: list[StoredVersion]) -> list[dict[str, Any]]:
    return [fhirjson.loads(v.content) for v in versions if v.content is not None]


def relationships(
    store: Querier,
    patient: dict[str, Any],
    now: datetime,
    episodes: list[dict[str, Any]],
    encounters: list[dict[str, Any]],
) -> frozenset[str]:
    """ODS codes of the organisations caring for the person now: the
    registered GP practice, managers of active EpisodesOfCare (social care,
    residence), and hospitals with an Encounter in progress or ended in the
    last 30 days."""
    found: set[str] = set()
    for gp in patient.get("generalPractitioner") or []:
        if (ods := _ods(store, gp)) is not None:
            found.add(ods)
    for episode in episodes:
        if episode.get("status") != "active":
            continue
        if (ods := _ods(store, episode.get("managingOrganization"))) is not None:
            found.add(ods)
    cutoff = fhirjson.instant(now - RECENT_ENCOUNTER)
    for encounter in encounters:
        status = encounter.get("status")
        ended = (encounter.get("period") or {}).get("end")
        recent = status == "in-progress" or (
            status == "finished"
            and isinstance(ended, str)
            and fhirjson.instant(fhirjson.parse_instant(ended)) >= cutoff
        )
        if recent and (ods := _ods(store, encounter.get("serviceProvider"))) is not None:
            found.add(ods)
    return frozenset(found)


def consents(store: Querier, raws: list[dict[str, Any]]) -> tuple[list[ConsentPolicy], list[str]]:
    """The person's privacy Consents as policies, and the ids of those that
    cannot be interpreted (which withhold the person's data: see consent)."""
    policies: list[ConsentPolicy] = []
    broken: list[str] = []

    def resolve(reference: str) -> str | None:
        return _ods(store, {"reference": reference})

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
    patient = _load(store, "Patient", patient_id)
    if patient is None:
        return None
    # Episodes, encounters and Consents all name the person by ``patient``:
    # one statement reads them all.
    linked = referring(store, ("Patient", patient_id), "patient", _LINKED, 3 * _MANY)
    by_type: dict[str, list[StoredVersion]] = {t: [] for t in _LINKED}
    for version in linked:
        by_type[version.res_type].append(version)
    policies, broken = consents(store, _contents(by_type["Consent"]))
    return Person(
        patient_id=patient_id,
        relationships=relationships(
            store,
            patient,
            now or datetime.now(UTC),
            _contents(by_type["EpisodeOfCare"]),
            _contents(by_type["Encounter"]),
        ),
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
