"""The decision: may this requester, for this purpose, see this resource?

The rules of PRODUCT.md section 4, in the order they are tried; the first
that applies decides, and names itself in the ``Decision``:

0. Secondary use (purposes ``SECONDARY_USE``: POPHLTH, HOPERAT, HRESCH) is
   decided by its own rules alone (``_secondary_use``), before any other,
   since none of direct care's applies: not even ``author``.
1. ``author``: the organisation that authored a resource always sees it
   (it wrote the version, or the id is one it assigned itself).
2. ``legally-restricted``: an ``R``-confidential resource is never shared
   beyond its author, by any rule or purpose.
   ``directory``: what is no one's record (organisations, practitioners,
   locations, medications) is shared with every client, unless it carries a
   restricted label (PSY, ETH, SEX, SDV).
3. ``audit`` / ``audit-scope``: an auditor, under HCOMPL only, sees Patient
   demographics, Consent, AuditEvent and Provenance, and nothing else; no one
   else may use HCOMPL.
   With no person on file whose record it is: ``person-unknown`` for a
   record naming a person not yet known (by an identifier no single Patient
   carries, or a Patient not on file), ``no-person`` for a clinical record
   (a kind always a person's) that names no one, or a restricted one naming
   no one: its author's alone until the person is known (and the gateway
   resolves who that is afresh for each decision).
4. ``consent-uninterpretable``: while any of the person's Consents cannot be
   interpreted, their data is withheld from everyone but its authors.
5. Under ETREAT (ambulance and hospital only, ``emergency-kind`` otherwise):
   ``restricted-label`` data stays withheld; a Consent provision that denies
   and names ETREAT among its purposes blocks (``consent``); otherwise
   ``emergency-access``. A dissent that does not name ETREAT does not block.
6. Under TREAT: without a care relationship, ``no-relationship`` (an
   ambulance never has one). The person's privacy Consents themselves are
   shown to those caring for them (``consent-record``). Then the person's active
   Consents: in each, the
   deepest provision that matches the request and the resource decides;
   across Consents a deny wins (``consent``). Restricted data (PSY, ETH, SEX,
   SDV) needs a permit whose provision names its labels and the requester's
   organisation (``consent``), else ``restricted-label``. With no Consent
   deciding: ``implied-consent``.
7. Any other purpose: ``purpose``.

Where the specification is silent, the choice that protects the person is
made; each is written down in ``consent/README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from consent.model import (
    ACT_CODE,
    DIRECTORY,
    NO_PERSON,
    PERSON,
    SECONDARY_USE,
    TYPE_1_OPT_OUT,
    TYPE_1_WITHDRAWN,
    Coding,
    ConsentPolicy,
    Decision,
    Person,
    Provision,
    Requester,
    ResourceFacts,
)

AUDITOR_TYPES = frozenset({"Patient", "Consent", "AuditEvent", "Provenance"})
EMERGENCY_KINDS = frozenset({"ambulance", "hospital"})
SECONDARY_KIND = "analytics"


def _within(moment: str, period: tuple[str | None, str | None]) -> bool:
    low, high = period
    return (low is None or low <= moment) and (high is None or moment < high)


def _overlaps(resource: ResourceFacts, period: tuple[str | None, str | None]) -> bool:
    low, high = period
    if low is None and high is None:
        return True
    if resource.clinical_low is None:
        return False  # no clinical date: the period cannot be shown to cover it
    res_high = resource.clinical_high or resource.clinical_low
    return (high is None or resource.clinical_low < high) and (low is None or low < res_high)


def _codes_match(wanted: frozenset[Coding], found: Iterable[Coding]) -> bool:
    """A wanted coding without a system matches that code in any system."""
    return any((system, code) in wanted or (None, code) in wanted for system, code in found)


def _matches(provision: Provision, requester: Requester, resource: ResourceFacts, now: str) -> bool:
    if not _within(now, provision.period):
        return False
    if provision.actors and requester.org_ods not in provision.actors:
        return False
    if provision.purposes and requester.purpose not in provision.purposes:
        return False
    if provision.classes and resource.res_type not in provision.classes:
        return False
    if provision.labels and not _codes_match(provision.labels, resource.labels):
        return False
    if provision.codes and not _codes_match(provision.codes, resource.codes):
        return False
    if provision.data and f"{resource.res_type}/{resource.res_id}" not in provision.data:
        return False
    return _overlaps(resource, provision.data_period)


def deciding_provision(
    provision: Provision, requester: Requester, resource: ResourceFacts, now: str
) -> Provision | None:
    """The deepest provision that matches, or ``None`` if the root does not.
    Nested provisions are exceptions to their parent; among matching
    siblings a deny wins."""
    if not _matches(provision, requester, resource, now):
        return None
    found = [
        deepest
        for child in provision.provisions
        if (deepest := deciding_provision(child, requester, resource, now)) is not None
    ]
    if not found:
        return provision
    return next((p for p in found if p.type == "deny"), found[0])


def _active(consents: Iterable[ConsentPolicy], now: str) -> list[ConsentPolicy]:
    return [c for c in consents if c.status == "active" and _within(now, c.period)]


def _verdicts(
    person: Person, requester: Requester, resource: ResourceFacts, now: str
) -> list[tuple[ConsentPolicy, Provision]]:
    return [
        (consent, provision)
        for consent in _active(person.consents, now)
        if (provision := deciding_provision(consent.provision, requester, resource, now))
        is not None
    ]


def _nobody_on_file(resource: ResourceFacts) -> Decision:
    """A record whose person is not on file, refused: one naming a person
    not known (yet), or one naming no one."""
    if resource.whose == PERSON:
        return Decision(False, "person-unknown", detail="no Patient on file is named")
    return Decision(False, "no-person", detail="names no person")


def _uninterpretable(person: Person) -> Decision:
    """Everything of a person with a Consent the engine cannot read, withheld."""
    return Decision(
        False,
        "consent-uninterpretable",
        consent_id=person.uninterpretable[0],
        detail="withheld until the Consent is fixed",
    )


def _by_consent(rule: str, consent: ConsentPolicy, provision: Provision) -> Decision:
    return Decision(
        permit=provision.type == "permit",
        rule=rule,
        consent_id=consent.consent_id,
        provision=provision.path,
    )


def decide(
    requester: Requester, person: Person | None, resource: ResourceFacts, now: str
) -> Decision:
    """Permit or deny, and which rule or Consent provision decided.
    ``person`` is ``None`` when no person on file is the one whose record the
    resource is: then what is no one's record (``resource.whose`` is
    DIRECTORY: an Organization, a Practitioner, a Medication) is shared with
    every client (``directory``) unless it is restricted, and anything else
    is its author's alone (``person-unknown``, ``no-person``).
    ``now`` is an instant in the engine's form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    if requester.purpose in SECONDARY_USE:
        return _secondary_use(requester, person, resource, now)
    if resource.authored_by(requester.org_ods):
        return Decision(True, "author")
    if resource.legally_restricted:
        return Decision(False, "legally-restricted")
    if person is None and resource.whose == DIRECTORY and not resource.restricted:
        return Decision(True, "directory")
    if requester.kind == "auditor" or requester.purpose == "HCOMPL":
        if (
            requester.kind == "auditor"
            and requester.purpose == "HCOMPL"
            and resource.res_type in AUDITOR_TYPES
        ):
            return Decision(True, "audit")
        return Decision(False, "audit-scope")
    if person is None:
        # Whose it is cannot be told (yet): shared with no one but its author,
        # so that it reaches only those the person's own rules let see it.
        return _nobody_on_file(resource)
    if person.uninterpretable:
        return _uninterpretable(person)
    restricted = resource.restricted
    if requester.purpose == "ETREAT":
        if requester.kind not in EMERGENCY_KINDS:
            return Decision(False, "emergency-kind")
        if restricted:
            return Decision(False, "restricted-label", detail=", ".join(sorted(restricted)))
        for consent, provision in _verdicts(person, requester, resource, now):
            if provision.type == "deny" and "ETREAT" in provision.purposes:
                return _by_consent("consent", consent, provision)
        return Decision(True, "emergency-access")
    if requester.purpose != "TREAT":
        return Decision(False, "purpose", detail=requester.purpose)
    if requester.org_ods not in person.relationships:
        return Decision(False, "no-relationship")
    if resource.sharing_policy:
        # The privacy Consents are the policy, not the record: those who care
        # for the person must see them to honour, change or withdraw them,
        # whatever they say (a dissent must not hide itself). An advance
        # decision is a Consent too, but it is the record, and shared as such.
        return Decision(True, "consent-record")
    verdicts = _verdicts(person, requester, resource, now)
    for consent, provision in verdicts:
        if provision.type == "deny":
            return _by_consent("consent", consent, provision)
    if restricted:
        wanted = {(ACT_CODE, label) for label in restricted}
        for consent, provision in verdicts:
            named = {(s or ACT_CODE, c) for s, c in provision.labels}
            if requester.org_ods in provision.actors and wanted <= named:
                return _by_consent("consent", consent, provision)
        return Decision(False, "restricted-label", detail=", ".join(sorted(restricted)))
    if verdicts:
        return _by_consent("consent", *verdicts[0])
    return Decision(True, "implied-consent")


def _secondary_use(
    requester: Requester, person: Person | None, resource: ResourceFacts, now: str
) -> Decision:
    """Secondary use (population health, planning, research), in order:

    1. ``secondary-use-kind``: only an organisation of kind analytics.
    2. With no person on file: ``directory`` for no one's record that is
       unrestricted, as in direct care; ``author`` for what the analytics
       organisation wrote itself that names no person (its cohort
       definitions: a Group naming people by NHS number is its own list,
       never anyone else's to read); otherwise ``person-unknown`` /
       ``no-person``: whether the person opted out cannot be told.
    3. ``restricted-never-secondary``: restricted (PSY, ETH, SEX, SDV) and
       R-confidential data never, whoever authored it: an author's own
       restricted records are not its to use again for another purpose, and
       no Consent opens them (a permit for a label is for direct care).
    4. ``consent-uninterpretable``, as in direct care.
    5. ``type-1-opt-out`` / ``national-data-opt-out``: the person is left
       out entirely (``Person.opted_out``).
    6. ``consent``: an active Consent whose deciding provision denies. A
       dissent that names no purpose denies secondary use too (unlike
       emergency care, nothing the person needs is lost by honouring it).
    7. ``secondary-use``: otherwise shared. No care relationship is needed:
       secondary use is not care of the person.
    """
    if requester.kind != SECONDARY_KIND:
        return Decision(False, "secondary-use-kind")
    restricted = resource.restricted
    if person is None:
        if resource.whose == DIRECTORY and not restricted and not resource.legally_restricted:
            return Decision(True, "directory")
        if resource.whose == NO_PERSON and resource.authored_by(requester.org_ods):
            return Decision(True, "author")
        return _nobody_on_file(resource)
    if restricted or resource.legally_restricted:
        labels = sorted(restricted) if restricted else ["R"]
        return Decision(False, "restricted-never-secondary", detail=", ".join(labels))
    if person.uninterpretable:
        return _uninterpretable(person)
    if person.opted_out is not None:
        return Decision(False, person.opted_out)
    for consent, provision in _verdicts(person, requester, resource, now):
        if provision.type == "deny":
            return _by_consent("consent", consent, provision)
    return Decision(True, "secondary-use")


def type_1_opt_out(records: Iterable[ResourceFacts]) -> bool:
    """Whether the person's records (those coded ``TYPE_1_OPT_OUT`` or
    ``TYPE_1_WITHDRAWN``) say they have a type 1 opt-out now: the later of
    an opt-out and a withdrawal by clinical date decides. Where dates cannot
    tell, the opt-out stands: an opt-out with no clinical date is not shown
    to be withdrawn, a withdrawal with none is not shown to follow an
    opt-out, and a withdrawal on the same instant as an opt-out does not
    follow it."""
    opted: list[str | None] = []
    withdrawn: list[str] = []
    for record in records:
        if _codes_match(frozenset({TYPE_1_OPT_OUT}), record.codes):
            opted.append(record.clinical_low)
        elif _codes_match(frozenset({TYPE_1_WITHDRAWN}), record.codes) and record.clinical_low:
            withdrawn.append(record.clinical_low)
    if not opted:
        return False
    if None in opted:
        return True
    latest = max(date for date in opted if date is not None)
    return not any(date > latest for date in withdrawn)
