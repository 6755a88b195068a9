"""One requester's access decisions for one request: the facts of each
person read once, every candidate resource put to ``consent.engine``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from consent.engine import decide
from consent.model import SECONDARY_USE, Coding, Decision, Person, Requester, ResourceFacts
from consent.parse import instant
from gateway import fhirjson, metrics
from gateway.access.facts import (
    NAMING_TYPES,
    facts_of,
    named_records,
    person_identifier,
    person_of,
    whose_record,
)
from gateway.access.people import load_people, load_person
from gateway.access.scope import Scope
from gateway.access.subjects import patient_by_identifier
from gateway.errors import Forbidden
from gateway.store import Querier, StoredVersion, last_content

_NO_ONE = Person(patient_id="")
# Stored versions whose facts are kept between requests: a few megabytes.
_FACTS_KEPT = 10_000


class StoredFacts(NamedTuple):
    """What the decisions read of a stored version."""

    person: str | None  # whose record it is
    light: ResourceFacts  # its facts without content (labels, author)
    full: ResourceFacts  # and with it (codes, clinical date)
    named: tuple[str, ...]  # the records it is shown only with (``named_records``)
    # The identifier it names its person by, where it names no Patient by id
    # (a person not known when it was written): resolved when it is decided.
    identifier: Coding | None = None


@lru_cache(maxsize=_FACTS_KEPT)
def stored_facts(content: bytes) -> StoredFacts:
    """The facts of a stored version, from its bytes: they hold its type, id
    and version number, and never change, so the facts of the versions read
    again and again (a person's record, summary after summary) are worked out
    once. Decisions are not kept: they depend on the requester, the person's
    Consents and relationships, and the moment."""
    resource = fhirjson.loads(content)
    whose = whose_record(resource)
    return StoredFacts(
        whose.patient_id,
        facts_of(resource, content=False, whose=whose.whose),
        facts_of(resource, whose=whose.whose),
        tuple(named_records(resource)),
        whose.identifier,
    )


# The largest version number a batched read asks for (a BIGINT); a target
# naming a larger one is read on its own, as before.
_MAX_VERSION = 2**63 - 1


@dataclasses.dataclass
class SharedFacts:
    """What decisions read that does not depend on who asks: each person's
    relationships and Consents, the labels each resource carries now and
    the records others name."""

    people: dict[str, Person | None] = dataclasses.field(default_factory=dict)
    labels_now: dict[tuple[str, str], frozenset[Coding]] = dataclasses.field(default_factory=dict)
    # Records named by others (a Provenance's targets, a List's items), by
    # reference: the version, or for a deletion the content it removed.
    targets: dict[str, StoredVersion | None] = dataclasses.field(default_factory=dict)


class AccessControl:
    """Decides, for one requester at one moment, which stored versions it may
    see. Not shared between requests: a Consent changed between two requests
    applies to the second."""

    def __init__(
        self,
        store: Querier,
        requester: Requester,
        now: datetime | None = None,
        on_decision: Callable[[str | None, Decision], None] | None = None,
        shared: SharedFacts | None = None,
    ) -> None:
        """``shared``: what the data says, read once for the decisions of
        several requesters at one moment (a notification put to every
        subscriber); it does not depend on who asks."""
        self._store = store
        self.requester = requester
        self._moment = now or datetime.now(UTC)
        shared = shared or SharedFacts()
        self._people = shared.people
        # The Patient each identifier a record names its person by resolves to.
        self._identified: dict[Coding, str | None] = {}
        # Told of every decision made (once per version), with the person's
        # id: what the request's audit entry records.
        self._on_decision = on_decision
        # A search decides a version for its total and again for its page.
        self._decided: dict[tuple[str, str, int], Decision] = {}
        # Provenance targets read by this request (``Type/id[/_history/n]``:
        # the version, or for a deletion the content it removed; ``None``
        # when not known), so that none is read twice.
        self._targets = shared.targets
        # The labels each resource carries now, by (type, id), for versions
        # not read as its latest: a record labelled restricted later must not
        # be shared through its earlier versions.
        self._labels_now = shared.labels_now

    @cached_property
    def _secondary_use(self) -> bool:
        """Whether the people's opt-outs of secondary use are read: only
        for a requester asking for it (direct care reads neither)."""
        return self.requester.purpose in SECONDARY_USE

    def _author_decides(self, facts: ResourceFacts) -> bool:
        """Whether the requester wrote the record and that alone decides:
        in direct care the author sees its own records whoever the person
        is; secondary use has no such rule (an opt-out holds whoever wrote
        the record), so the person must be read."""
        return not self._secondary_use and facts.authored_by(self.requester.org_ods)

    @cached_property
    def _now(self) -> str:
        return instant(self._moment)

    @cached_property
    def scope(self) -> Scope:
        """What this requester could ever be shown now, as SQL: a search's
        pre-filter, derived from the rules these decisions apply."""
        return Scope(self.requester, self._moment)

    def person(self, patient_id: str) -> Person:
        """What the data says about the person now, as the decisions see it."""
        return self._person(patient_id)

    def _person(self, patient_id: str) -> Person:
        # A person not (or no longer) on file: no one has a relationship with
        # them and no Consent of theirs can permit.
        return self._on_file(patient_id) or Person(patient_id=patient_id)

    def _on_file(self, patient_id: str) -> Person | None:
        """The person, or ``None`` when there is no such live Patient."""
        if patient_id not in self._people:
            self._people[patient_id] = load_person(
                self._store, patient_id, self._moment, secondary_use=self._secondary_use
            )
        return self._people[patient_id]

    def _identified_by(self, identifier: Coding | None) -> str | None:
        """The id of the one live Patient carrying ``identifier``, now."""
        if identifier is None:
            return None
        if identifier not in self._identified:
            found = patient_by_identifier(self._store, identifier)
            self._identified[identifier] = found
        return self._identified[identifier]

    def decide(self, version: StoredVersion) -> Decision:
        if version.content is None:
            return Decision(False, "deleted")
        key = (version.res_type, version.res_id, version.version)
        decided = self._decided.get(key)
        if decided is None:
            stored = stored_facts(version.content)
            patient_id, decided = self._decide_alone(stored, self._later_labels(version))
            if stored.named and self._checks_targets(decided):
                # Until decided, a List naming itself (or one naming it back)
                # is refused, not decided for ever.
                self._decided[key] = Decision(False, _RULE_NAMED[version.res_type])
                decided = self._with_what_it_names(version.res_type, stored.named, decided)
            self._decided[key] = decided
            _counted(decided)
            if self._on_decision is not None:
                self._on_decision(patient_id, decided)
        return decided

    def _decide_alone(
        self, stored: StoredFacts, later: frozenset[Coding] = frozenset()
    ) -> tuple[str | None, Decision]:
        """The person whose record a stored version is, and the decision on
        it alone (for a Provenance or a List, before the records it names
        are looked at), with the ``later`` labels its resource carries now
        added to its own."""
        patient_id, light, full = stored.person, stored.light, stored.full
        facts = _labelled(light, later)
        if self._author_decides(facts):
            # The author sees it whoever the person is: no need to read them.
            return patient_id, decide(self.requester, None, facts, self._now)
        if patient_id is None:
            # Named by identifier: that person's record once they are known.
            patient_id = self._identified_by(stored.identifier)
        person = self._on_file(patient_id) if patient_id is not None else None
        if person is not None and person.reads_content:
            facts = _labelled(full, later)
        return patient_id, decide(self.requester, person, facts, self._now)

    def _later_labels(self, version: StoredVersion) -> frozenset[Coding]:
        """The labels ``version``'s resource carries now, unless ``version``
        was read as the latest (then its own are those)."""
        if version.current:
            return frozenset()
        key = (version.res_type, version.res_id)
        if key not in self._labels_now:
            self._labels_now[key] = self._labels_of(self._store.read(*key))
        return self._labels_now[key]

    def _labels_of(self, latest: StoredVersion | None) -> frozenset[Coding]:
        """The labels of a resource's latest version (for a deletion, of the
        content it removed)."""
        found = self._content_of(latest) if latest is not None else None
        if found is None or found.content is None:
            return frozenset()
        return stored_facts(found.content).light.labels

    def _read_labels_now(self, keys: Iterable[tuple[str, str]]) -> None:
        """The labels ``keys``' resources carry now, read at once."""
        wanted = set(keys) - self._labels_now.keys()
        if wanted:
            latest = self._store.read_many(wanted)
            for key in wanted:
                self._labels_now[key] = self._labels_of(latest.get(key))

    @staticmethod
    def _checks_targets(decided: Decision) -> bool:
        """Whether a decision must still look at the records a resource names
        (a Provenance's targets, a List's items), if it names any."""
        return decided.permit and decided.rule not in ("audit", "author")

    def prefetch(self, versions: Sequence[StoredVersion]) -> None:
        """Read at once what deciding ``versions`` (a page of search
        results, say) will read: the records the Provenances and Lists among
        them name that their decisions will look at, in one statement or two
        instead of one per record. Decides nothing: each version is still
        decided when asked, from the same facts."""
        for version in versions:
            if version.content is None:
                continue
            # What a Provenance or a List names among the versions
            # themselves need not be read again; nor the labels a latest
            # version carries now (its own, from facts its decision works
            # out anyway).
            reference = f"{version.res_type}/{version.res_id}/_history/{version.version}"
            self._targets.setdefault(reference, version)
            if version.current:
                # What a List names without a version is its latest.
                self._targets.setdefault(f"{version.res_type}/{version.res_id}", version)
                labels = stored_facts(version.content).light.labels
                self._labels_now.setdefault((version.res_type, version.res_id), labels)
        self._read_labels_now(
            (v.res_type, v.res_id) for v in versions if not v.current and v.content is not None
        )
        self._read_people(versions)
        wanted: list[str] = []
        for version in versions:
            key = (version.res_type, version.res_id, version.version)
            if version.content is None or key in self._decided:
                continue
            stored = stored_facts(version.content)
            if not stored.named:
                continue
            decided = self._decide_alone(stored, self._later_labels(version))[1]
            if self._checks_targets(decided):
                wanted.extend(stored.named)
        self._read_targets(wanted)

    def _read_people(self, versions: Sequence[StoredVersion]) -> None:
        """Read at once the people whose records ``versions`` are, where
        their decisions will need them (not the requester's own records)."""
        wanted = {
            stored.person
            for version in versions
            if version.content is not None
            and (stored := stored_facts(version.content)).person is not None
            and stored.person not in self._people
            and not self._author_decides(stored.light)
        }
        if len(wanted) > 1:
            self._people.update(
                load_people(
                    self._store, sorted(wanted), self._moment, secondary_use=self._secondary_use
                )
            )

    def _read_targets(self, references: Iterable[str]) -> None:
        """Read the records ``references`` names (as a Provenance or a List
        names them) that are neither decided nor read yet, at once."""
        current: dict[str, tuple[str, str]] = {}
        versions: dict[str, tuple[str, str, int]] = {}
        for reference in references:
            if reference in self._targets:
                continue
            res_type, res_id, version_id = _parse_target(reference)
            number = _version_number(version_id)
            if not version_id:
                current[reference] = (res_type, res_id)
            elif number is not None and (res_type, res_id, number) not in self._decided:
                versions[reference] = (res_type, res_id, number)
            # A version decided needs no reading; anything else odd is left
            # to ``_target``, one at a time, as before.
        # A version's decision also looks at the labels its resource carries
        # now: read with the targets named without a version.
        now = {(t, i) for t, i, _ in versions.values()} - self._labels_now.keys()
        read = self._store.read_many({*current.values(), *now}) if current or now else {}
        vread = self._store.vread_many(versions.values()) if versions else {}
        for key in now:
            self._labels_now[key] = self._labels_of(read.get(key))
        for reference, key in current.items():
            self._targets[reference] = self._content_of(read.get(key))
        for reference, version_key in versions.items():
            self._targets[reference] = self._content_of(vread.get(version_key))

    def _content_of(self, found: StoredVersion | None) -> StoredVersion | None:
        """A target version, or for a deletion the last content before it."""
        if found is not None and found.deleted:
            return last_content(self._store, found)
        return found

    def _with_what_it_names(
        self, res_type: str, references: Sequence[str], decided: Decision
    ) -> Decision:
        """A Provenance tells what was written, when and by whom; a List (a
        GP's medication list) or a Composition indexes records, often with
        their names as words. Each is shown only with every record it names
        (for a Provenance each target version, or for a deletion the content
        it removed), so it never reveals a record the requester may not see."""
        if not decided.permit:
            return decided
        rule = _RULE_NAMED[res_type]
        self._read_targets(references)
        for reference in references:
            found = self._already_decided(reference)
            if found is None:
                version = self._target(reference)
                if version is None:
                    return Decision(False, rule, detail=f"{reference} is not known")
                if version.res_type == "Provenance" == res_type:
                    continue  # what a Provenance says of another is the other's to show
                found = self.decide(version)
            if not found.permit:
                return Decision(
                    False,
                    rule,
                    consent_id=found.consent_id,
                    provision=found.provision,
                    detail=f"{reference}: {found.rule}",
                )
        return decided

    def _already_decided(self, reference: object) -> Decision | None:
        """The decision already made on the version ``Type/id/_history/n``
        names (a document decides a person's records before their
        Provenance): no need to read it again."""
        if not isinstance(reference, str):
            return None
        res_type, _, rest = reference.partition("/")
        res_id, _, version_id = rest.partition("/_history/")
        number = _version_number(version_id)
        if number is None:
            return None
        return self._decided.get((res_type, res_id, number))

    def _target(self, reference: str) -> StoredVersion | None:
        """The version a Provenance target names, or for a deletion the last
        content before it."""
        if reference not in self._targets:
            res_type, res_id, version_id = _parse_target(reference)
            number = _version_number(version_id)
            if number is not None:
                found = self._store.vread(res_type, res_id, number)
            elif version_id:
                found = None  # a version no store can hold: not known
            else:
                found = self._store.read(res_type, res_id)
            self._targets[reference] = self._content_of(found)
        return self._targets[reference]

    def decided_at_once(self, version: StoredVersion) -> Decision | None:
        """The decision, when it needs nothing more read from the store (the
        requester authored it; it is no one's record): the event loop may
        take it without a thread. ``None`` when the person must be read."""
        if version.content is None:
            return None
        key = (version.res_type, version.res_id, version.version)
        if key in self._decided:
            return self._decided[key]
        stored = stored_facts(version.content)
        if stored.named:
            return None  # decided with what it names
        patient_id, facts = stored.person, stored.light
        # No one's record read as an earlier version: the labels its resource
        # carries now are still to be read; one naming its person by
        # identifier: who that is.
        if self._author_decides(facts) or (
            patient_id is None and stored.identifier is None and version.current
        ):
            decided = self._decided[key] = decide(self.requester, None, facts, self._now)
            _counted(decided)
            if self._on_decision is not None:
                self._on_decision(patient_id, decided)
            return decided
        return None

    def check_change(self, before: StoredVersion | None, after: dict[str, Any] | None) -> None:
        """A person's Consents are recorded and changed by the organisations
        caring for them, for direct care: no one else may create, change or
        delete a Consent (before or after the change)."""
        for content in (
            fhirjson.loads(before.content) if before and before.content else None,
            after,
        ):
            if content is None or content.get("resourceType") != "Consent":
                continue
            patient_id = person_of(content) or self._identified_by(person_identifier(content))
            caring = patient_id is not None and (
                self.requester.org_ods in self.person(patient_id).relationships
            )
            if self.requester.purpose != "TREAT" or not caring:
                raise Forbidden(
                    "a person's Consent may be recorded or changed only by an organisation "
                    "with a care relationship with them, for direct care (TREAT)",
                    code="GW-0621",
                )

    def visible(self, version: StoredVersion) -> bool:
        return self.decide(version).permit

    def whose(self, version: StoredVersion) -> str | None:
        """The Patient whose record ``version`` is, as its decision found
        them (one named by an identifier, resolved); ``None`` for no one's."""
        if version.content is None:
            return None
        stored = stored_facts(version.content)
        if stored.person is None and stored.identifier is not None:
            return self._identified_by(stored.identifier)
        return stored.person


# Resources that name other records, and the rule refusing one that names a
# record the requester may not see.
_RULE_NAMED = {
    "Provenance": "provenance-target",
    "List": "list-item",
    "Composition": "composition-entry",
    "Encounter": "encounter-diagnosis",
    "DiagnosticReport": "report-result",
    "Observation": "observation-member",
}
assert _RULE_NAMED.keys() == NAMING_TYPES, "every kind that names records has its rule"


def _parse_target(reference: str) -> tuple[str, str, str]:
    """``Type/id/_history/n`` as (type, id, n); ``Type/id`` as (type, id,
    "")."""
    res_type, _, rest = reference.partition("/")
    res_id, _, version_id = rest.partition("/_history/")
    return res_type, res_id, version_id


def _version_number(version_id: str) -> int | None:
    """A version number a batched read may ask for (ASCII digits, within a
    BIGINT); ``None`` for anything else."""
    if version_id.isascii() and version_id.isdigit() and int(version_id) <= _MAX_VERSION:
        return int(version_id)
    return None


def _labelled(facts: ResourceFacts, later: frozenset[Coding]) -> ResourceFacts:
    """``facts`` with the ``later`` labels added to its own."""
    if later <= facts.labels:
        return facts
    return dataclasses.replace(facts, labels=facts.labels | later)


# The counters of each (rule, decision) met so far: a child looked up once.
_DECISION_COUNTERS: dict[tuple[str, bool], Any] = {}


def _counted(decision: Decision) -> None:
    """Count a decision made (``gateway_consent_decisions_total``), by the
    rule that decided it: a fixed vocabulary (``consent.engine``), never the
    person, the Consent or the record."""
    key = (decision.rule, decision.permit)
    counter = _DECISION_COUNTERS.get(key)
    if counter is None:
        counter = _DECISION_COUNTERS[key] = metrics.CONSENT_DECISIONS.labels(
            rule=decision.rule, decision="permit" if decision.permit else "deny"
        )
    counter.inc()
