"""What the data says about a person, for the consent rules: the
organisations with a care relationship (PRODUCT.md section 4), the
person's Consents, and whether they opted out of secondary use (a type 1
opt-out in their record, or their NHS number on the National Data Opt-out
list). Read afresh for each request, so a new registration, an
episode closed or a Consent withdrawn applies to the very next request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from consent.engine import type_1_opt_out
from consent.model import (
    NATIONAL,
    TYPE_1,
    TYPE_1_OPT_OUT,
    TYPE_1_WITHDRAWN,
    ConsentPolicy,
    Person,
    ResourceFacts,
)
from consent.parse import Uninterpretable, is_privacy_consent, parse_consent
from gateway import fhirjson
from gateway.access import index, optouts
from gateway.access.claims import (
    CareClaim,
    care_claims,
    code_of,
    holds,
    ods_identifier,
    ods_of_organisation,
    organisation_to_read,
)
from gateway.access.facts import facts_of
from gateway.errors import Unprocessable
from gateway.search.matching import referring_each, with_referring
from gateway.store import Querier, Reader, StoredVersion
from mappings.identity import NHS_NUMBER_SYSTEM

_MANY = 1000  # episodes, encounters or Consents of one person read at most
# The records that state a type 1 opt-out or its withdrawal: of these, only
# those coded so are read (``_TYPE_1``).
_CODED = ("Observation", "Condition")
_CARING = ("EpisodeOfCare", "Encounter", "Consent")
_LINKED = (*_CARING, *_CODED)
# SQL true on a row ``r`` naming a person that is one of ``_CODED`` coded
# as a type 1 opt-out or its withdrawal, as its ``code`` is indexed.
_TYPE_1 = (
    f"(r.res_type IN ({', '.join('?' for _ in _CODED)}) AND EXISTS (SELECT 1 FROM search_token o "
    "WHERE o.res_type = r.res_type AND o.res_id = r.res_id AND o.param = ? "
    "AND o.system = ? AND o.code IN (?, ?)))"
)
_TYPE_1_VALUES: tuple[Any, ...] = (
    *_CODED,
    "code",
    TYPE_1_OPT_OUT[0],
    TYPE_1_OPT_OUT[1],
    TYPE_1_WITHDRAWN[1],
)


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


def _ods(store: Reader, reference: Any, organisations: _Organisations | None = None) -> str | None:
    """The ODS code of an organisation a Reference names, by identifier or by
    reading the Organization it points to (once, into ``organisations``)."""
    if (given := ods_identifier(reference)) is not None:
        return code_of(given)
    res_id = organisation_to_read(reference)
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
        if (res_id := organisation_to_read(reference)) is not None and res_id not in organisations
    }
    found = store.read_many(wanted) if wanted else {}
    for key in wanted:
        organisations[key[1]] = _loaded(found.get(key))


def _contents(versions: list[StoredVersion]) -> list[dict[str, Any]]:
    return [fhirjson.loads(v.content) for v in versions if v.content is not None]


def relationships(
    store: Querier, claims: list[CareClaim], now: str, organisations: _Organisations
) -> frozenset[str]:
    """ODS codes of the organisations caring for the person at the instant
    ``now``, from their claims of care (``care_claims`` of their Patient,
    EpisodesOfCare and Encounters): the registered GP practice, managers of
    active episodes (social care, residence), and hospitals with an
    Encounter in progress or ended in the last 30 days. The Organizations
    named by reference only are read at once (into ``organisations``)."""
    caring = [claim.organisation for claim in claims if holds(claim, now)]
    _read_organisations(store, caring, organisations)
    return frozenset(
        ods for reference in caring if (ods := _ods(store, reference, organisations)) is not None
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


def load_person(
    store: Querier,
    patient_id: str,
    now: datetime | None = None,
    *,
    secondary_use: bool = False,
) -> Person | None:
    """The person's facts, or ``None`` if there is no such (live) Patient.
    ``secondary_use``: with whether they opted out of it (a type 1 opt-out,
    the national list), which only a secondary-use decision reads: direct
    care reads neither."""
    # The Patient, and the episodes, encounters and Consents that all name
    # the person by ``patient``: one statement reads them all.
    if secondary_use:
        found, linked = with_referring(
            store, ("Patient", patient_id), "patient", _LINKED, 3 * _MANY, _all_but_uncoded()
        )
    else:
        found, linked = with_referring(
            store, ("Patient", patient_id), "patient", _CARING, 3 * _MANY
        )
    read = _records(found, linked)
    if read is None:
        return None
    national = (
        optouts.on_list(store, read.nhs_numbers)
        if secondary_use and read.nhs_numbers
        else frozenset()
    )
    instant = fhirjson.instant(now or datetime.now(UTC))
    return _person_of(store, patient_id, read, instant, {}, national)


def _all_but_uncoded() -> tuple[str, list[Any]]:
    """An SQL condition on a row ``r`` naming a person: true but for the
    records of ``_CODED`` that are not coded as a type 1 opt-out or its
    withdrawal (a person's every Observation is not what a decision needs)."""
    marks = ", ".join("?" for _ in _CODED)
    return f"(r.res_type NOT IN ({marks}) OR {_TYPE_1})", [*_CODED, *_TYPE_1_VALUES]


def load_people(
    store: Querier,
    patient_ids: Sequence[str],
    now: datetime | None = None,
    *,
    secondary_use: bool = False,
) -> dict[str, Person | None]:
    """``load_person`` of each of ``patient_ids``, read together (a page of
    search results names many people): two statements for them all, where
    a person with more linked records than one reads is read alone."""
    moment = now or datetime.now(UTC)
    instant = fhirjson.instant(moment)
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    linked = referring_each(
        store,
        "Patient",
        ids,
        "patient",
        _LINKED if secondary_use else _CARING,
        3 * _MANY * len(ids),
        _bearing(instant, secondary_use),
    )
    if linked is None:
        return {
            patient_id: load_person(store, patient_id, moment, secondary_use=secondary_use)
            for patient_id in ids
        }
    patients = store.read_many([("Patient", patient_id) for patient_id in ids])
    organisations: _Organisations = {}
    people: dict[str, Person | None] = {}
    records: dict[str, _Records] = {}
    for patient_id in ids:
        if len(linked[patient_id]) >= 3 * _MANY:  # as many as one reads: read alone
            people[patient_id] = load_person(store, patient_id, moment, secondary_use=secondary_use)
        elif (read := _records(patients.get(("Patient", patient_id)), linked[patient_id])) is None:
            people[patient_id] = None
        else:
            records[patient_id] = read
    # The Organizations the page's people's claims name by reference: read
    # at once for them all, not person by person.
    caring = [c.organisation for r in records.values() for c in r.claims if holds(c, instant)]
    _read_organisations(store, caring, organisations)
    # The page's people's NHS numbers on the national list: one statement.
    numbers = [number for read in records.values() for number in read.nhs_numbers]
    national = optouts.on_list(store, numbers) if secondary_use and numbers else frozenset()
    for patient_id, read in records.items():
        people[patient_id] = _person_of(store, patient_id, read, instant, organisations, national)
    return people


def _bearing(now: str, secondary_use: bool) -> tuple[str, list[Any]]:
    """An SQL condition on a row ``r`` naming a person (its record's type
    and id, the person's id) true for the records a decision at ``now``
    finds anything in: a Consent, or an episode or Encounter whose claim of
    care on them has not lapsed, as the access index says (written with
    each version by the same ``care_claims``). Where every Encounter of
    the person's history was read, and parsed, to find none current."""
    type_1 = f"{_TYPE_1} OR " if secondary_use else ""
    condition = (
        f"(r.res_type = ? OR {type_1}EXISTS (SELECT 1 FROM search_token t "
        "WHERE t.res_type = r.res_type "
        "AND t.res_id = r.res_id AND t.param IN (?, ?) AND t.system = r.target_id "
        "AND NOT EXISTS (SELECT 1 FROM search_date u WHERE u.res_type = t.res_type "
        "AND u.res_id = t.res_id AND u.param = ? AND u.high < ?)))"
    )
    type_1_values = _TYPE_1_VALUES if secondary_use else ()
    values = [*type_1_values, index.CARER, index.CARER_ORG, index.CARE_UNTIL, now]
    return condition, ["Consent", *values]


class _Records(NamedTuple):
    """What a decision reads of a person, parsed: the claims of care their
    Patient, episodes and Encounters make, their Consents, the records
    stating a type 1 opt-out or its withdrawal, and their NHS numbers."""

    claims: list[CareClaim]
    consents: list[dict[str, Any]]
    type_1: list[ResourceFacts]
    nhs_numbers: tuple[str, ...]


def _records(found: StoredVersion | None, linked: list[StoredVersion]) -> _Records | None:
    """The person's records, parsed; ``None`` when their Patient is not on file."""
    patient = _loaded(found)
    if patient is None:
        return None
    by_type: dict[str, list[StoredVersion]] = {t: [] for t in _LINKED}
    for version in linked:
        by_type[version.res_type].append(version)
    stating = (patient, *_contents(by_type["EpisodeOfCare"]), *_contents(by_type["Encounter"]))
    claims = [claim for resource in stating for claim in care_claims(resource)]
    coded = [facts_of(resource) for t in _CODED for resource in _contents(by_type[t])]
    numbers = tuple(
        str(found["value"])
        for found in patient.get("identifier") or []
        if isinstance(found, dict)
        and found.get("system") == NHS_NUMBER_SYSTEM
        and isinstance(found.get("value"), str)
    )
    return _Records(claims, _contents(by_type["Consent"]), coded, numbers)


def _person_of(
    store: Querier,
    patient_id: str,
    read: _Records,
    now: str,
    organisations: _Organisations,
    national: frozenset[str],
) -> Person:
    """The person from their records, at the instant ``now``; ``national``:
    the NHS numbers (of theirs, and maybe others') on the national list."""
    caring = relationships(store, read.claims, now, organisations)
    policies, broken = consents(store, read.consents, organisations)
    opted_out = None
    if type_1_opt_out(read.type_1):
        opted_out = TYPE_1
    elif national.intersection(read.nhs_numbers):
        opted_out = NATIONAL
    return Person(
        patient_id=patient_id,
        relationships=caring,
        consents=tuple(policies),
        uninterpretable=tuple(broken),
        opted_out=opted_out,
    )


def registered_practices(store: Querier, patient_id: str) -> frozenset[str]:
    """The ODS codes of the GP practices the person is registered with."""
    patient = _load(store, "Patient", patient_id)
    if patient is None:
        return frozenset()
    return frozenset(
        ods for gp in patient.get("generalPractitioner") or [] if (ods := _ods(store, gp))
    )
