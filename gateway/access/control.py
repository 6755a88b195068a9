"""One requester's access decisions for one request: the facts of each
person read once, every candidate resource put to ``consent.engine``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from consent.engine import decide
from consent.model import Decision, Person, Requester
from consent.parse import instant
from gateway import fhirjson
from gateway.access.facts import facts_of, person_of
from gateway.access.people import load_person
from gateway.errors import Forbidden
from gateway.interactions.read import last_content
from gateway.store import Querier, StoredVersion

_NO_ONE = Person(patient_id="")


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
    ) -> None:
        self._store = store
        self.requester = requester
        self._moment = now or datetime.now(UTC)
        self._people: dict[str, Person] = {}
        # Told of every decision made (once per version), with the person's
        # id: what the request's audit entry records.
        self._on_decision = on_decision
        # A search decides a version for its total and again for its page.
        self._decided: dict[tuple[str, str, int], Decision] = {}

    @cached_property
    def _now(self) -> str:
        return instant(self._moment)

    def person(self, patient_id: str) -> Person:
        """What the data says about the person now, as the decisions see it."""
        return self._person(patient_id)

    def _person(self, patient_id: str) -> Person:
        if patient_id not in self._people:
            found = load_person(self._store, patient_id, self._moment)
            # A record of a person not (or no longer) on file: no one has a
            # relationship with them and no Consent of theirs can permit.
            self._people[patient_id] = found or Person(patient_id=patient_id)
        return self._people[patient_id]

    def decide(self, version: StoredVersion) -> Decision:
        if version.content is None:
            return Decision(False, "deleted")
        key = (version.res_type, version.res_id, version.version)
        decided = self._decided.get(key)
        if decided is None:
            resource = fhirjson.loads(version.content)
            facts = facts_of(resource, content=False)
            patient_id = person_of(resource)
            if facts.author_ods == self.requester.org_ods:
                # The author sees it whoever the person is: no need to read them.
                decided = decide(self.requester, None, facts, self._now)
            else:
                person = self._person(patient_id) if patient_id is not None else None
                if person is not None and person.reads_content:
                    facts = facts_of(resource)
                decided = decide(self.requester, person, facts, self._now)
            if resource["resourceType"] == "Provenance" and decided.rule not in ("audit", "author"):
                decided = self._provenance(resource, decided)
            self._decided[key] = decided
            if self._on_decision is not None:
                self._on_decision(patient_id, decided)
        return decided

    def _provenance(self, provenance: dict[str, Any], decided: Decision) -> Decision:
        """A Provenance tells what was written, when and by whom: it is shown
        only with everything it is about (each target version, or for a
        deletion the content it removed), so it never reveals a record the
        requester may not see."""
        if not decided.permit:
            return decided
        for target in provenance.get("target") or []:
            reference = target.get("reference") if isinstance(target, dict) else None
            found = self._already_decided(reference)
            if found is None:
                version = self._target(reference) if isinstance(reference, str) else None
                if version is None:
                    return Decision(False, "provenance-target", detail=f"{reference} is not known")
                if version.res_type == "Provenance":
                    continue
                found = self.decide(version)
            if not found.permit:
                return Decision(
                    False,
                    "provenance-target",
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
        if not version_id.isdigit():
            return None
        return self._decided.get((res_type, res_id, int(version_id)))

    def _target(self, reference: str) -> StoredVersion | None:
        """The version a Provenance target names, or for a deletion the last
        content before it."""
        res_type, _, rest = reference.partition("/")
        res_id, _, version_id = rest.partition("/_history/")
        if version_id.isdigit():
            found = self._store.vread(res_type, res_id, int(version_id))
        else:
            found = self._store.read(res_type, res_id)
        if found is not None and found.deleted:
            found = last_content(self._store, found)
        return found

    def decided_at_once(self, version: StoredVersion) -> Decision | None:
        """The decision, when it needs nothing more read from the store (the
        requester authored it; it is no one's record): the event loop may
        take it without a thread. ``None`` when the person must be read."""
        if version.content is None:
            return None
        key = (version.res_type, version.res_id, version.version)
        if key in self._decided:
            return self._decided[key]
        resource = fhirjson.loads(version.content)
        facts = facts_of(resource, content=False)
        if resource["resourceType"] == "Provenance":
            return None  # decided with its targets
        patient_id = person_of(resource)
        if facts.author_ods == self.requester.org_ods or patient_id is None:
            decided = self._decided[key] = decide(self.requester, None, facts, self._now)
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
            patient_id = person_of(content)
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
