"""Which entries of a document's section state the same clinical fact, and
how that fact reads once: one row for each, with every source that recorded
it, the most authoritative and then the most recent first, and what the
sources disagree on shown rather than hidden.

A care-home resident's medicine is stated by the practice that prescribes
it (its request and its statement) and by the home that gives it (its
statement and each dose it recorded); a paramedic must not have to
reconcile four rows by eye at 3 a.m. Nothing is merged in the data: every
source resource stays an entry of its own, and each points at the row that
stands for it.

What counts as the same:

- medicines: the same concept (a dm+d or SNOMED CT code in common, the same
  Medication, or the same name once case and spacing are set aside);
- observations: the same measurement (a code in common, or two codes of one
  vital sign, ``SAME_MEASUREMENT``) at the same moment. Two values for one
  moment are one row that says they differ;
- problems: the same concept, current, or past with the same onset (two
  chest infections years apart are two problems);
- allergies: the same concept;
- contacts (RelatedPerson): the same name;
- a DNACPR decision: one, whether a form or an alert records it, on one date;
- anything else: the same words in every column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import orjson

from gateway.documents import narrative
from gateway.documents.narrative import Resource, Row, Source, codes_in, dicts_in, text_of
from gateway.documents.sections import not_for_cpr

Resolve = Callable[[str], Resource | None]

_CURRENT_PROBLEM = {"active", "recurrence", "relapse"}
# "No known allergy" and its kin (SNOMED CT): a statement that there is none.
_NO_KNOWN_ALLERGY = {"716186003", "409137002", "428607008", "1066541000000109"}
_SNOMED = "http://snomed.info/sct"
_MEDICINES = {"MedicationStatement", "MedicationRequest", "MedicationAdministration"}

# Codes (LOINC, SNOMED CT) that name one measurement of a vital sign: a
# practice that records "Pulse rate" and a home that records "Heart rate" at
# the same moment have taken one reading.
SAME_MEASUREMENT: tuple[frozenset[str], ...] = (
    frozenset({"8867-4", "364075005", "78564009", "8889-8"}),  # heart rate, pulse rate
    frozenset({"85354-9", "55284-4", "75367002", "163020007"}),  # blood pressure
    frozenset({"8302-2", "50373000", "248333004", "8306-3"}),  # body height
    frozenset({"29463-7", "27113001", "3141-9"}),  # body weight
    frozenset({"39156-5", "60621009"}),  # body mass index
    frozenset({"8310-5", "276885007", "386725007"}),  # body temperature
    frozenset({"2708-6", "59408-5", "103228002", "431314004"}),  # oxygen saturation
    frozenset({"9279-1", "86290005"}),  # respiratory rate
)
_MEASUREMENT_OF = {code: index for index, codes in enumerate(SAME_MEASUREMENT) for code in codes}

# Who speaks first for a kind of fact, by the kind of organisation that
# recorded it: the prescriber for a medicine, the practice for problems and
# allergies, the people a person lives with for their contacts. An
# organisation of no known kind comes last.
_PRACTICE_FIRST = ("gp", "hospital", "care-home", "council")
_AUTHORITY = {"RelatedPerson": ("care-home", "council", "gp", "hospital")}
_KIND_WORDS = (
    ("gp", ("gp", "general practice", "surgery", "medical centre", "health centre")),
    ("hospital", ("hospital", "trust", "acute")),
    ("care-home", ("care home", "nursing home", "residential")),
    ("council", ("council", "local authority", "social care")),
)
# Within one organisation's record of a fact: the prescription, then what is
# taken, then each dose given; a DNACPR form before the alert that points at it.
_WITHIN_ONE_SOURCE = {
    "MedicationRequest": 0,
    "MedicationStatement": 1,
    "MedicationAdministration": 2,
    "Consent": 0,
    "Flag": 1,
}


@dataclass(frozen=True)
class Reconciled:
    """One row of a section: the entries that state it (the first speaks for
    them), how it reads, who recorded it, and whether the sources differ."""

    members: tuple[str, ...]
    row: Row
    sources: tuple[Source, ...]
    conflicting: bool


@dataclass(frozen=True)
class Origins:
    """What the reconciliation needs to know of an entry's author."""

    shown: Callable[[Resource], str]  # "Primrose Row Surgery (F99C02)", or "unknown source"
    kind: Callable[[Resource], str]  # the directory's words: "GP practice", "Care home"


def kind_key(words: str) -> str:
    """``gp``, ``hospital``, ``care-home``, ``council`` or ``""`` from the
    directory's words for an organisation's kind."""
    lowered = words.lower().replace("-", " ")
    for key, spellings in _KIND_WORDS:
        if any(spelling in lowered for spelling in spellings):
            return key
    return ""


def reconcile(
    references: Sequence[str],
    resources: Mapping[str, Resource],
    origins: Origins,
    *,
    latest_only: bool = False,
) -> list[Reconciled]:
    """The rows of a section holding ``references`` (in the section's order;
    a row sits where its first entry did). ``latest_only``: only the newest
    row of each measurement or concept (a baseline)."""
    summarised: dict[str, Row] = {}  # each entry's own row, written once
    grouping = _grouped(references, resources, summarised)
    groups = _newest(grouping) if latest_only else grouping.groups
    rows = [_reconciled(group, resources, origins, summarised) for group in groups]
    return _no_known_allergy_checked(rows, resources, origins)


def _no_known_allergy(resource: Resource) -> bool:
    return resource["resourceType"] == "AllergyIntolerance" and bool(
        codes_in(resource.get("code"), _SNOMED) & _NO_KNOWN_ALLERGY
    )


def _no_known_allergy_checked(
    rows: list[Reconciled], resources: Mapping[str, Resource], origins: Origins
) -> list[Reconciled]:
    """A source's "no known allergy" beside another's allergy is a
    disagreement a reader must see: the row says who records allergies."""
    allergic = [
        resources[row.members[0]]
        for row in rows
        if resources[row.members[0]]["resourceType"] == "AllergyIntolerance"
        and not _no_known_allergy(resources[row.members[0]])
        and not codes_in(resources[row.members[0]].get("clinicalStatus")) & {"inactive", "resolved"}
    ]
    if not allergic:
        return rows
    checked = []
    for row in rows:
        if _no_known_allergy(resources[row.members[0]]):
            detail = narrative.join(
                [row.row.detail, f"Sources differ: {_names(allergic, origins)} record allergies"]
            )
            row = Reconciled(
                row.members,
                Row(row.row.what, detail, row.row.when, "Check: sources differ"),
                row.sources,
                True,
            )
        checked.append(row)
    return checked


# -- what is the same ------------------------------------------------------------------


class _Groups:
    """Union-find over positions, joined by the keys their facts share."""

    def __init__(self, count: int) -> None:
        self.parent = list(range(count))
        self.owner: dict[Any, int] = {}

    def find(self, at: int) -> int:
        while self.parent[at] != at:
            self.parent[at] = self.parent[self.parent[at]]
            at = self.parent[at]
        return at

    def join(self, at: int, keys: Iterable[Any]) -> None:
        """``at`` and every position that gave one of ``keys`` are one group,
        whose root is its first position: rows keep the section's order."""
        for key in keys:
            mine, theirs = self.find(at), self.find(self.owner.setdefault(key, at))
            if mine != theirs:
                self.parent[max(mine, theirs)] = min(mine, theirs)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for at in range(len(self.parent)):
            found.setdefault(self.find(at), []).append(at)
        return sorted(found.values(), key=lambda members: members[0])


_PUNCTUATION = str.maketrans(".,;:", "    ")


def _normal(text: str) -> str:
    """Words as compared: lower case, punctuation and runs of space as one space."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def _concept_keys(concept: Any) -> set[Any]:
    """What a CodeableConcept may be known by: each code in its system, and
    its words."""
    keys: set[Any] = set()
    for value in dicts_in(concept):
        for coding in dicts_in(value.get("coding")):
            code = text_of(coding.get("code"))
            if code:
                keys.add(("code", text_of(coding.get("system")), code))
            if text_of(coding.get("display")):
                keys.add(("words", _normal(coding["display"])))
        if text_of(value.get("text")):
            keys.add(("words", _normal(value["text"])))
    return keys


def _medicine_keys(resource: Resource, resolve: Resolve) -> set[Any]:
    keys = _concept_keys(resource.get("medicationCodeableConcept"))
    reference = resource.get("medicationReference")
    if isinstance(reference, dict):
        target = text_of(reference.get("reference"))
        if target:
            keys.add(("medication", target))
            medication = resolve(target)
            if medication is not None:
                keys |= _concept_keys(medication.get("code"))
        if text_of(reference.get("display")):
            keys.add(("words", _normal(reference["display"])))
    return keys


def _measurement_keys(resource: Resource) -> set[Any]:
    """What an observation measures: a vital sign's measurement, else its
    codes, else (uncoded) its words."""
    code = resource.get("code")
    coded = {
        ("code", text_of(coding.get("system")), value)
        for concept in dicts_in(code)
        for coding in dicts_in(concept.get("coding"))
        if (value := text_of(coding.get("code")))
    }
    measured = {_MEASUREMENT_OF[key[2]] for key in coded if key[2] in _MEASUREMENT_OF}
    if measured:
        # A vital sign is known by its measurement alone: "Body height" and
        # "Body height measure" are one.
        return {("measurement", index) for index in measured}
    return coded or _concept_keys(code)


def _moment(resource: Resource) -> str:
    """When an observation was made, comparable across time zones: an
    instant to the minute in UTC, a date as written."""
    value: Any = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
    if not isinstance(value, str):
        period = resource.get("effectivePeriod")
        value = period.get("start") if isinstance(period, dict) else None
    if not isinstance(value, str):
        return ""
    if "T" not in value:
        return value
    return in_utc(value, "minutes")


def in_utc(value: str, timespec: str = "auto") -> str:
    """A FHIR dateTime as text that orders across time zones: one with an
    offset as the same moment in UTC, one without as written, to
    ``timespec`` (``datetime.isoformat``'s); text it is not, unchanged."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec=timespec)


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:
        return value


def _component_name(component: Resource) -> Any:
    codes = codes_in(component.get("code"))
    for name, known in (("systolic", narrative.SYSTOLIC), ("diastolic", narrative.DIASTOLIC)):
        if codes & known:
            return name
    return tuple(sorted(codes)) or _normal(narrative.concept_text(component.get("code")))


def _value_key(element: Resource) -> Any:
    """An observation's (or component's) value, as compared: a quantity by
    its number and unit code, whatever words the unit is written in."""
    quantity = element.get("valueQuantity")
    if isinstance(quantity, dict):
        unit = text_of(quantity.get("code")) or _normal(text_of(quantity.get("unit")))
        return ("quantity", _number(quantity.get("value")), unit)
    concept = element.get("valueCodeableConcept")
    if isinstance(concept, dict):
        codes = sorted(codes_in(concept))
        return ("concept", tuple(codes) if codes else _normal(narrative.concept_text(concept)))
    for key, value in element.items():
        if key.startswith("value"):
            if isinstance(value, str):
                return (key, _normal(value))
            return (key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    components = sorted(
        (repr(_component_name(c)), repr(_value_key(c))) for c in dicts_in(element.get("component"))
    )
    return ("components", tuple(components)) if components else ("none",)


def _name_keys(resource: Resource) -> set[Any]:
    names = set()
    for name in dicts_in(resource.get("name")):
        given = " ".join(v for v in name.get("given") or [] if isinstance(v, str))
        shown = text_of(name.get("text")) or f"{given} {text_of(name.get('family'))}"
        if _normal(shown):
            names.add(("name", _normal(shown)))
    return names


def _onset(resource: Resource) -> str:
    onset = resource.get("onsetDateTime")
    if not isinstance(onset, str):
        period = resource.get("onsetPeriod")
        onset = period.get("start") if isinstance(period, dict) else None
    return onset[:10] if isinstance(onset, str) else ""


def _concept(resource: Resource, resolve: Resolve) -> set[Any]:
    """What an entry is about, whenever it was: its measurement, medicine or
    concept (empty when it names none)."""
    res_type = resource["resourceType"]
    if res_type in _MEDICINES:
        return _medicine_keys(resource, resolve)
    if res_type == "Observation":
        return _measurement_keys(resource)
    if res_type == "RelatedPerson":
        return _name_keys(resource)
    return _concept_keys(resource.get("code"))


def _keys(
    resource: Resource, concept: set[Any], moment: str, row: Callable[[], Row]
) -> Iterable[Any]:
    """What makes two entries one fact (see the module's docstring)."""
    res_type = resource["resourceType"]
    decided = not_for_cpr(resource)
    if decided is not None:
        # A DNACPR decision is one, whether a form (Consent) or an alert
        # (Flag) records it, as long as they date it alike.
        return [("not-for-cpr", decided)]
    if res_type in _MEDICINES:
        return (("medicine", key) for key in concept)
    if res_type == "Observation":
        return (("observation", key, moment) for key in concept)
    if res_type == "AllergyIntolerance":
        return (("allergy", key) for key in concept)
    if res_type == "Condition":
        current = bool(codes_in(resource.get("clinicalStatus")) & _CURRENT_PROBLEM)
        when = "current" if current else _onset(resource)
        return (("condition", key, when) for key in concept)
    if res_type == "RelatedPerson":
        return (("contact", key) for key in concept)
    shown = row()
    return [("same", res_type, shown.what, shown.detail, shown.when, shown.status)]


@dataclass
class _Grouping:
    """A section's entries in groups, and what was worked out on the way:
    each entry's concept and moment, which a baseline needs again."""

    groups: list[list[str]]
    concepts: dict[str, set[Any]]
    moments: dict[str, str]


def _grouped(
    references: Sequence[str], resources: Mapping[str, Resource], summarised: dict[str, Row]
) -> _Grouping:
    groups = _Groups(len(references))
    concepts: dict[str, set[Any]] = {}
    moments: dict[str, str] = {}
    for at, reference in enumerate(references):
        resource = resources[reference]
        concept = concepts[reference] = _concept(resource, resources.get)
        moment = moments[reference] = _moment(resource) or _dated(resource)
        row = partial(_row, reference, resources, summarised)
        groups.join(at, _keys(resource, concept, moment, row))
    found = [[references[at] for at in members] for members in groups.groups()]
    return _Grouping(found, concepts, moments)


def _newest(grouping: _Grouping) -> list[list[str]]:
    """Of the groups of one measurement or concept, the newest: groups that
    share one are a family, of which the group with the latest moment stays."""
    groups = grouping.groups
    families = _Groups(len(groups))
    for index, group in enumerate(groups):
        families.join(index, (key for r in group for key in grouping.concepts[r]))
    kept = []
    for family in families.groups():
        kept.append(
            max(
                family,
                key=lambda index: (max(grouping.moments[r] for r in groups[index]), -index),
            )
        )
    return [groups[index] for index in sorted(kept)]


# -- who said it, and when -------------------------------------------------------------


def _dated(resource: Resource) -> str:
    """The date its source recorded the fact, as written: when it was
    asserted, recorded or made, never when the gateway received it."""
    for name in (
        "recordedDate",
        "dateAsserted",
        "authoredOn",
        "issued",
        "effectiveDateTime",
        "effectiveInstant",
        "occurrenceDateTime",
        "performedDateTime",
        "onsetDateTime",
        "dateTime",
        "date",
    ):
        value = resource.get(name)
        if isinstance(value, str) and value:
            return value
    for name in ("effectivePeriod", "period", "performedPeriod", "onsetPeriod"):
        period = resource.get(name)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return str(period["start"])
    return ""


def _day(value: str) -> str:
    return narrative.format_date(value[:10]) if value else ""


def recorded_on(resource: Resource) -> str:
    """The day its source recorded the fact, as a reader sees it."""
    return _day(_dated(resource))


def _ordered(members: list[str], resources: Mapping[str, Resource], origins: Origins) -> list[str]:
    """The most authoritative source first, then the most recent."""
    by_date = sorted(members, key=lambda r: _dated(resources[r]), reverse=True)

    def rank(reference: str) -> tuple[int, int]:
        resource = resources[reference]
        order = _AUTHORITY.get(resource["resourceType"], _PRACTICE_FIRST)
        kind = kind_key(origins.kind(resource))
        return (
            order.index(kind) if kind in order else len(order),
            _WITHIN_ONE_SOURCE.get(resource["resourceType"], 0),
        )

    return sorted(by_date, key=rank)


def _sources(
    members: list[str], resources: Mapping[str, Resource], origins: Origins
) -> tuple[Source, ...]:
    """Each organisation once, in the members' order, with the latest day it
    recorded the fact on."""
    found: dict[str, str] = {}
    for reference in members:
        resource = resources[reference]
        shown, on = origins.shown(resource), _dated(resource)
        if shown not in found or on > found[shown]:
            found[shown] = on
    return tuple(Source(shown, _day(on)) for shown, on in found.items())


def _names(said: Iterable[Resource], origins: Origins) -> str:
    """Who recorded ``said``, each organisation once."""
    return ", ".join(dict.fromkeys(origins.shown(resource) for resource in said))


# -- how it reads ----------------------------------------------------------------------


def _row(reference: str, resources: Mapping[str, Resource], summarised: dict[str, Row]) -> Row:
    row = summarised.get(reference)
    if row is None:
        row = summarised[reference] = narrative.summarise(resources[reference], resources.get)
    return row


def _reconciled(
    group: list[str],
    resources: Mapping[str, Resource],
    origins: Origins,
    summarised: dict[str, Row],
) -> Reconciled:
    members = _ordered(group, resources, origins)
    resolve = resources.get
    first = resources[members[0]]
    sources = _sources(members, resources, origins)
    said = [resources[r] for r in members]
    if len(members) == 1:
        row, conflicting = _row(members[0], resources, summarised), False
    elif any(resource["resourceType"] in _MEDICINES for resource in said):
        row, conflicting = _medicine(said, resolve, origins)
    elif first["resourceType"] == "Observation":
        row, conflicting = _values_differ(said, resolve, origins)
    elif first["resourceType"] in ("Condition", "AllergyIntolerance"):
        row, conflicting = _statuses_differ(said, resolve, origins)
    else:
        row, conflicting = _row(members[0], resources, summarised), False
    return Reconciled(tuple(members), row, sources, conflicting)


def _versions(said: list[Resource], compared: Callable[[Resource], Any]) -> list[list[Resource]]:
    """``said`` in groups that agree on ``compared``, in order."""
    versions: dict[Any, list[Resource]] = {}
    for resource in said:
        versions.setdefault(compared(resource), []).append(resource)
    return list(versions.values())


def _values_differ(said: list[Resource], resolve: Resolve, origins: Origins) -> tuple[Row, bool]:
    """One measurement at one moment: its value, or each value with who
    recorded it when they differ."""
    first = narrative.summarise(said[0], resolve)
    versions = _versions(said, lambda r: repr(_value_key(r)))
    if len(versions) == 1:
        return first, False
    each = "; ".join(
        f"{narrative.summarise(version[0], resolve).detail or 'no value'} "
        f"({_names(version, origins)})"
        for version in versions
    )
    return Row(first.what, f"Sources differ: {each}", first.when, first.status), True


# What a problem's or an allergy's sources can disagree on; an element one
# source leaves out is no disagreement.
_STATED = (
    lambda r: tuple(sorted(codes_in(r.get("clinicalStatus")))),
    lambda r: tuple(sorted(codes_in(r.get("verificationStatus")))),
    lambda r: text_of(r.get("criticality")),
)


def _statuses_differ(said: list[Resource], resolve: Resolve, origins: Origins) -> tuple[Row, bool]:
    """One problem or allergy: its row, or what each source says of its
    status and criticality, when two of them state different ones."""
    first = narrative.summarise(said[0], resolve)
    differ = any(len({value for r in said if (value := element(r))}) > 1 for element in _STATED)
    if not differ:
        return first, False
    versions = _versions(said, lambda r: tuple(element(r) for element in _STATED))
    each = "; ".join(
        narrative.join(
            [
                narrative.summarise(version[0], resolve).status or "status not given",
                f"criticality {text_of(version[0].get('criticality'))}"
                if version[0].get("criticality")
                else "",
            ],
            ", ",
        )
        + f" ({_names(version, origins)})"
        for version in versions
    )
    detail = narrative.join([first.detail, f"Sources differ: {each}"])
    return Row(first.what, detail, first.when, "Check: sources differ"), True


def _medicine(said: list[Resource], resolve: Resolve, origins: Origins) -> tuple[Row, bool]:
    """One medicine from every source: its current dose (each, when the
    sources differ), the prescriber's course and last issue, the last dose
    given, and its status (each, when the sources differ)."""
    stated = [r for r in said if r["resourceType"] != "MedicationAdministration"]
    given = [
        r
        for r in said
        if r["resourceType"] == "MedicationAdministration"
        and r.get("status") in ("completed", "in-progress")
    ]
    speaker = stated[0] if stated else said[0]
    conflicting = False
    doses = _versions(
        [r for r in stated if narrative.dosage_text(r)],
        lambda r: _normal(narrative.dosage_text(r)),
    )
    if len(doses) > 1:
        conflicting = True
        dose = "Doses differ: " + "; ".join(
            f"{narrative.dosage_text(version[0])} ({_names(version, origins)})" for version in doses
        )
    else:
        dose = narrative.dosage_text(doses[0][0]) if doses else ""
    # "Repeat, last issued 14 Nov 2026": what the prescriber's record says.
    course = next((c for c in map(narrative.course_text, stated) if c), "")
    issued = max((narrative.last_issued(r) for r in stated), default="")
    if issued:
        course = narrative.join([course, f"last issued {narrative.format_date(issued)}"], ", ")
    last = ""
    if given:
        latest = max(given, key=lambda r: text_of(r.get("effectiveDateTime")))
        when_given = narrative.format_date(latest.get("effectiveDateTime")) or (
            narrative.format_period(latest.get("effectivePeriod"))
        )
        last = f"Last dose given {when_given}" if when_given else "Last dose given"
    notes = [note for r in (*stated, *given) for note in narrative.notes_of(r)]
    reasons = [reason for r in stated for reason in narrative.concepts_text(r.get("statusReason"))]
    detail = narrative.join([dose, course, last, *reasons, *notes])
    statuses = _versions(stated, lambda r: narrative.in_words(r.get("status")))
    if len(statuses) > 1:
        conflicting = True
        status = "; ".join(
            f"{narrative.in_words(version[0].get('status')) or 'Status not given'} "
            f"({_names(version, origins)})"
            for version in statuses
        )
    elif statuses:
        status = narrative.in_words(statuses[0][0].get("status"))
    else:
        status = narrative.summarise(speaker, resolve).status
    when = _started(stated) if stated else narrative.summarise(speaker, resolve).when
    return Row(narrative.medication_name(speaker, resolve), detail, when, status), conflicting


def _started(stated: list[Resource]) -> str:
    """Since when the medicine is taken, as its earliest statement says."""
    starts = []
    for resource in stated:
        period = resource.get("effectivePeriod")
        start = (
            period.get("start")
            if isinstance(period, dict)
            else resource.get("effectiveDateTime") or resource.get("authoredOn")
        )
        if isinstance(start, str) and start:
            starts.append(start)
    return f"From {narrative.format_date(min(starts))}" if starts else ""
