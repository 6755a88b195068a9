"""One requester's access decisions for one request: the facts of each
person read once, every candidate resource put to ``consent.engine``."""

from __future__ import annotations

from datetime import UTC, datetime

from consent.engine import decide
from consent.model import Decision, Person, Requester
from consent.parse import instant
from gateway import fhirjson
from gateway.access.facts import facts_of, person_of
from gateway.access.people import load_person
from gateway.store import Querier, StoredVersion

_NO_ONE = Person(patient_id="")


class AccessControl:
    """Decides, for one requester at one moment, which stored versions it may
    see. Not shared between requests: a Consent changed between two requests
    applies to the second."""

    def __init__(self, store: Querier, requester: Requester, now: datetime | None = None) -> None:
        self._store = store
        self.requester = requester
        self._moment = now or datetime.now(UTC)
        self._now = instant(self._moment)
        self._people: dict[str, Person] = {}
        # A search decides a version for its total and again for its page.
        self._decided: dict[tuple[str, str, int], Decision] = {}

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
            patient_id = person_of(resource)
            person = self._person(patient_id) if patient_id is not None else None
            facts = facts_of(resource, content=person is not None and person.reads_content)
            decided = self._decided[key] = decide(self.requester, person, facts, self._now)
        return decided

    def visible(self, version: StoredVersion) -> bool:
        return self.decide(version).permit
