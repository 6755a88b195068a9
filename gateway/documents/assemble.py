"""Builds a document (https://hl7.org/fhir/R4/documents.html) for one
requester: the person's resources it may see, sorted into the sections of
the document kind, with a Composition whose narratives are generated from
those entries.

Everything comes through the search engine with the requester's consent
check: what it may not see is never read into the document, so nothing
about it (not even that a section would have held something) can show.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway import __version__, fhirjson
from gateway.directory import Organisation
from gateway.documents import narrative, stay
from gateway.documents.reconcile import Origins, Reconciled, reconcile, recorded_on
from gateway.documents.sections import (
    HEADING_SECTIONS,
    LATEST_STAY,
    MEDICINES_STARTED,
    MEDICINES_STOPPED,
    DocumentKind,
    Resource,
    Section,
    is_residence,
)
from gateway.errors import Unprocessable
from gateway.identifiers import ODS_SYSTEM
from gateway.interactions import search as searches
from gateway.interactions.types import Visible
from gateway.search.compartments import PATIENT_COMPARTMENT, compartment_members
from gateway.search.extract import parse_reference
from gateway.search.query import MAX_COUNT, parse_search, parse_system_search
from gateway.store import Store, StoredVersion
from mappings.ukcore import LIST_WARNING_URL

_LOINC = "http://loinc.org"
_ACT_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActClass"
_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
_NARRATIVE_LINK = "http://hl7.org/fhir/StructureDefinition/narrativeLink"
_AUTHOR_PREFIX = "urn:ods:"
# Types that are no one's record but that entries refer to (the medicine a
# statement is about, the practice that recorded it): brought in when the
# requester may see them, so the document reads on its own.
_SUPPORTING = ("Medication", "Organization", "Practitioner", "PractitionerRole", "Location")
# A ``reference`` key naming one of them by ``Type/id``, neither versioned
# nor absolute (``referenced`` checks that the key is not inside a string).
_SUPPORTING_REFERENCE = re.compile(
    rb'"reference"\s*:\s*"((?:' + "|".join(_SUPPORTING).encode() + rb')/[^"\\/]+)"'
)
# Not part of a person's summary: the log of who looked and the Patient
# (which is the subject, not a member). Other documents' Compositions are
# gathered for the latest hospital stay, where a discharge summary sent as
# one is listed; no other section holds them.
_NOT_GATHERED = {"AuditEvent", "Patient"}
# A person with more than this many resources the requester may see gets a
# clear refusal, not a document no one could read: $everything pages them.
MAX_GATHERED = 10_000


@dataclass
class Document:
    """A built document and what went into it (for the audit entry)."""

    bundle: dict[str, Any]
    identifier: str
    author: str  # the fullUrl of the gateway's Device, who signs it
    entries: list[str] = field(default_factory=list)  # Type/id/_history/n


@dataclass(frozen=True)
class Gathered:
    """The person's resources the requester may see, by reference."""

    versions: dict[str, StoredVersion]
    resources: dict[str, Resource]


def _contents(versions: list[StoredVersion]) -> Iterator[tuple[str, StoredVersion, Resource]]:
    for version in versions:
        if version.content is not None:
            yield f"{version.res_type}/{version.res_id}", version, fhirjson.loads(version.content)


def gather(
    store: Store, patient_id: str, *, visible: Visible, readable: Callable[[str], bool]
) -> Gathered:
    """Every resource in the person's compartment that the requester may
    see and read (its token's scopes), and what those refer to of the
    supporting types."""
    types = [t for t in PATIENT_COMPARTMENT if t not in _NOT_GATHERED and readable(t)]
    versions: dict[str, StoredVersion] = {}
    resources: dict[str, Resource] = {}
    if types:
        # No total: every match is read anyway (a total of a search of more
        # than a page would read them all again, page after page).
        query = parse_system_search(
            [("_type", ",".join(types)), ("_count", str(MAX_COUNT)), ("_total", "none")],
            within=types,
        )
        query.compartment = ("Patient", patient_id, compartment_members("Patient", query.types))
        while True:
            result = searches.search(store, query, visible=visible, includable=_includes_nothing)
            for reference, version, resource in _contents(result.matches):
                versions[reference] = version
                resources[reference] = resource
            if len(versions) > MAX_GATHERED:
                raise Unprocessable(
                    f"this person's record holds more than {MAX_GATHERED} resources; "
                    "too many for one document: page through Patient/$everything instead",
                    code="GW-0440",
                )
            if result.next is None:
                break
            query.cursor = result.next.encode()
    if readable("Provenance"):
        _with_provenance(store, visible, versions, resources)
    wanted = [
        reference
        for reference in sorted(referenced(versions.values()))
        if reference not in versions and readable(reference.partition("/")[0])
    ]
    # One statement for them all; each is then decided in turn, as before.
    found = store.read_many(_key(reference) for reference in wanted)
    for reference in wanted:
        supporting = found.get(_key(reference))
        if supporting is not None and not supporting.deleted and visible(supporting):
            for key, kept, resource in _contents([supporting]):
                versions[key] = kept
                resources[key] = resource
    return Gathered(versions, resources)


def _key(reference: str) -> tuple[str, str]:
    res_type, _, res_id = reference.partition("/")
    return res_type, res_id


# The Provenance used to be found by a search per hundred targets, and the
# first to name an organisation gives its name in the narratives: they are
# still gathered in the order those searches gave, each one's new matches
# (in the database's order of ids) after the last one's.
_TARGETS_PER_BATCH = 100
# Targets named in one Provenance search (a whole number of batches): a few
# statements even for the largest record, each well within SQLite's oldest
# limit of 999 placeholders (two a target).
_TARGETS_PER_SEARCH = 4 * _TARGETS_PER_BATCH


def _with_provenance(
    store: Store,
    visible: Visible,
    versions: dict[str, StoredVersion],
    resources: dict[str, Resource],
) -> None:
    """Add the Provenance of what was gathered: only the person's own
    Patient is a target of every one, so a write of a Task alone is found
    by its target. The search decides each page for the requester, the
    targets those decisions look at read at once."""
    assert _TARGETS_PER_SEARCH % _TARGETS_PER_BATCH == 0
    targets = sorted(r for r in resources if not r.startswith("Provenance/"))
    batch_of = {target: index // _TARGETS_PER_BATCH for index, target in enumerate(targets)}

    def first_batch(found: tuple[str, StoredVersion, Resource]) -> int:
        # What the target parameter indexes (``Provenance.target``), read
        # here without the extraction's values: a write's Provenance may
        # name hundreds.
        batches = [len(targets)]
        for target in found[2].get("target") or []:
            reference = target.get("reference") if isinstance(target, dict) else None
            if isinstance(reference, str):
                res_type, res_id = parse_reference(reference)
                if res_type is not None:
                    batches.append(batch_of.get(f"{res_type}/{res_id}", len(targets)))
        return min(batches)

    for start in range(0, len(targets), _TARGETS_PER_SEARCH):
        chunk = targets[start : start + _TARGETS_PER_SEARCH]
        query = parse_search(
            "Provenance",
            [("target", ",".join(chunk)), ("_count", str(MAX_COUNT)), ("_total", "none")],
            bounded=False,  # sized here, not by a request
        )
        found: list[tuple[str, StoredVersion, Resource]] = []
        while True:
            result = searches.search(store, query, visible=visible, includable=_includes_nothing)
            found.extend(_contents(result.matches))
            if result.next is None:
                break
            query.cursor = result.next.encode()
        # Stable: in the database's order within each batch. One found
        # before keeps its place.
        for reference, version, resource in sorted(found, key=first_batch):
            versions[reference] = version
            resources[reference] = resource


def referenced(versions: Iterable[StoredVersion]) -> set[str]:
    """``Type/id`` of every resource of a supporting type that ``versions``
    refer to. Read from the stored JSON itself, which the gateway wrote
    (``fhirjson``: a key or a type name is never escaped, a quote inside a
    string always is): walking every parsed resource cost a document ~8 ms."""
    found: set[str] = set()
    for version in versions:
        content = version.content
        if content is None:
            continue
        for match in _SUPPORTING_REFERENCE.finditer(content):
            # A key follows an object's brace or a comma; in a string that
            # mentions one, a backslash would come first.
            at = match.start() - 1
            while at >= 0 and content[at] in b" \t\r\n":
                at -= 1
            if at >= 0 and content[at] in b"{,":
                found.add(match.group(1).decode())
    return found


# -- where each fact came from ----------------------------------------------------------


def _author_ods(resource: Resource) -> str | None:
    source = (resource.get("meta") or {}).get("source")
    if isinstance(source, str) and source.startswith(_AUTHOR_PREFIX):
        return source.removeprefix(_AUTHOR_PREFIX)
    return None


def _provenance_names(provenances: list[Resource]) -> dict[str, str]:
    names: dict[str, str] = {}
    for provenance in provenances:
        for agent in provenance.get("agent") or []:
            who = agent.get("who") or {}
            identifier = who.get("identifier") or {}
            if identifier.get("system") == ODS_SYSTEM and who.get("display"):
                names.setdefault(str(identifier.get("value")), str(who["display"]))
    return names


def _origins(names: dict[str, str], organisations: Mapping[str, Organisation]) -> Origins:
    """Who recorded each entry: the directory's name for its author, else the
    one its Provenance gave; and what kind of organisation that is."""

    def shown(resource: Resource) -> str:
        ods = _author_ods(resource)
        return narrative.organisation(ods, names.get(ods)) if ods else "unknown source"

    def kind(resource: Resource) -> str:
        ods = _author_ods(resource)
        found = organisations.get(ods.upper()) if ods else None
        return found.kind if found is not None else ""

    return Origins(shown, kind)


def _source(resource: Resource, origins: Origins) -> list[narrative.Source]:
    return [narrative.Source(origins.shown(resource), recorded_on(resource))]


# -- the document ---------------------------------------------------------------------


def _clinical_date(resource: Resource) -> str:
    for name in (
        "effectiveDateTime",
        "onsetDateTime",
        "recordedDate",
        "occurrenceDateTime",
        "authoredOn",
        "performedDateTime",
        "issued",
        "date",
        "dateAsserted",
    ):
        value = resource.get(name)
        if isinstance(value, str):
            return value
    for name in ("effectivePeriod", "period", "executionPeriod", "performedPeriod"):
        period = resource.get(name)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return str(period["start"])
    return ""


def _sorted(references: list[str], resources: dict[str, Resource]) -> list[str]:
    """Within a section: by type, then newest first."""
    by_date = sorted(references, key=lambda r: _clinical_date(resources[r]), reverse=True)
    return sorted(by_date, key=lambda r: resources[r]["resourceType"])


def _placed(kind: DocumentKind, gathered: Gathered) -> list[tuple[Section, list[str]]]:
    """Each gathered resource in the first section that holds it."""
    placed: list[tuple[Section, list[str]]] = [(section, []) for section in kind.sections]
    for reference, resource in gathered.resources.items():
        for section, members in placed:
            if section.holds(resource):
                members.append(reference)
                break
    return [(section, _sorted(members, gathered.resources)) for section, members in placed]


def _key_contacts(patient: Resource, gathered: Gathered) -> list[narrative.Row]:
    """Who cares for the person, as the records the requester may see say:
    the registered practice, the homes and councils with an active episode."""
    rows = [
        narrative.Row(
            "Registered GP" if _names_a_person(gp) else "Registered GP practice",
            _organisation(gp, gathered.resources),
            "",
            "",
        )
        for gp in patient.get("generalPractitioner") or []
    ]
    for resource in gathered.resources.values():
        if resource["resourceType"] == "EpisodeOfCare" and resource.get("status") == "active":
            manager = resource.get("managingOrganization")
            kinds = [t.get("text") for t in resource.get("type") or [] if isinstance(t, dict)]
            label = "Care home" if is_residence(resource) else "Social care"
            rows.append(
                narrative.Row(
                    label,
                    _organisation(manager, gathered.resources),
                    narrative.format_date((resource.get("period") or {}).get("start", "")),
                    ", ".join(k for k in kinds if k),
                )
            )
    return rows


def _heading_warnings(
    gathered: Gathered, origins: Origins
) -> dict[str, list[tuple[narrative.Row, list[narrative.Source]]]]:
    """By section, a row for each warning that a GP record's heading the
    requester may see is incomplete (confidential items left out, a record
    in transit), with the GP system's words, and where it came from."""
    found: dict[str, list[tuple[narrative.Row, list[narrative.Source]]]] = {}
    for _, resource in sorted(gathered.resources.items()):
        if resource["resourceType"] != "List":
            continue
        codings = narrative.dicts_in((resource.get("code") or {}).get("coding"))
        key = next(
            (HEADING_SECTIONS[c["code"]] for c in codings if c.get("code") in HEADING_SECTIONS),
            None,
        )
        warned = [
            narrative.text_of(coding.get("display")) or narrative.text_of(coding.get("code"))
            for extension in narrative.dicts_in(resource.get("extension"))
            if extension.get("url") == LIST_WARNING_URL
            for coding in narrative.dicts_in(
                (extension.get("valueCodeableConcept") or {}).get("coding")
            )
        ]
        if key is None or not warned:
            continue
        notes = " ".join(
            narrative.text_of(note.get("text")) for note in narrative.dicts_in(resource.get("note"))
        )
        title = narrative.text_of(resource.get("title")) or "GP record"
        row = narrative.Row(f"{title} may be incomplete", notes, "", ", ".join(warned))
        found.setdefault(key, []).append((row, _source(resource, origins)))
    return found


def _names_a_person(reference: Any) -> bool:
    """Whether a ``generalPractitioner`` reference is to the GP (a
    Practitioner or their role), not the practice."""
    if not isinstance(reference, dict):
        return False
    target = str(reference.get("reference") or "")
    return reference.get("type") in ("Practitioner", "PractitionerRole") or target.startswith(
        ("Practitioner/", "PractitionerRole/")
    )


def _organisation(reference: Any, resources: dict[str, Resource]) -> str:
    """An organisation a record names, in words: by its ODS code through
    the directory, else the Organization it points at in the document."""
    if not isinstance(reference, dict):
        return ""
    identifier = reference.get("identifier") or {}
    code = identifier.get("value") if identifier.get("system") == ODS_SYSTEM else None
    display = reference.get("display")
    if isinstance(code, str) and code:
        return narrative.organisation(code, display if isinstance(display, str) else None)
    target = resources.get(str(reference.get("reference") or ""))
    if target is not None and target.get("resourceType") == "Organization":
        return narrative.summarise(target, resources.get).what
    return str(display or "")


def _section(
    section: Section,
    members: list[str],
    gathered: Gathered,
    origins: Origins,
    extra: list[narrative.Row],
    warnings: list[tuple[narrative.Row, list[narrative.Source]]],
) -> tuple[dict[str, Any], list[str]] | None:
    """A section of ``members``, reconciled: one row for each fact, however
    many sources state it. ``extra`` rows are not entries (key contacts),
    and ``warnings`` that the section may be incomplete come first and
    leave a section with nothing else still empty. With the section, the
    entries it lists (a baseline lists only the newest of each)."""
    if not members and not extra and not warnings and not section.always:
        return None
    empty = not members and not extra
    if empty and not warnings:
        return _empty(section), []
    entry = _headed(section)
    rows = [*warnings, *((row, []) for row in extra)]
    if empty:
        entry["emptyReason"] = _empty_reason(section)
        rows.append((narrative.Row(section.empty), []))
    facts = reconcile(members, gathered.resources, origins, latest_only=section.latest_only)
    return entry, _listed(entry, section, rows, facts)


def _headed(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "code": {
            "coding": [{"system": section.system, "code": section.code, "display": section.display}]
        },
    }


def _empty_reason(section: Section) -> dict[str, Any]:
    """ "unavailable" whether nothing was recorded or nothing may be shown:
    the two must read alike."""
    return {
        "coding": [{"system": _EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}],
        "text": section.empty,
    }


def _empty(section: Section) -> dict[str, Any]:
    """A section with nothing in it, saying so."""
    entry = _headed(section)
    entry["emptyReason"] = _empty_reason(section)
    entry["text"] = {"status": "generated", "div": narrative.empty_div(section.empty)}
    return entry


def _listed(
    entry: dict[str, Any],
    section: Section,
    rows: list[tuple[narrative.Row, list[narrative.Source]]],
    facts: list[Reconciled],
) -> list[str]:
    """``entry``'s narrative (the note ``rows``, then a row for each fact)
    and its entries, each linked to the row that stands for it; the
    references listed."""
    notes = len(rows)  # the warnings and key contacts before the facts
    fact_ids = [f"{section.key}-{n}" for n in range(1, len(facts) + 1)]
    rows = [*rows, *((fact.row, list(fact.sources)) for fact in facts)]
    div = narrative.section_div(
        [row for row, _ in rows],
        source_of=[sources for _, sources in rows],
        ids=[f"{section.key}-note-{n}" for n in range(notes)] + fact_ids,
        conflicting=[False] * notes + [fact.conflicting for fact in facts],
    )
    entry["text"] = {"status": "generated", "div": div}
    # Each entry points at the row that stands for it (and the others it
    # was reconciled with), as FHIR's narrativeLink extension says.
    listed = [
        (reference, row_id)
        for fact, row_id in zip(facts, fact_ids, strict=True)
        for reference in fact.members
    ]
    if listed:
        entry["entry"] = [
            {
                "extension": [{"url": _NARRATIVE_LINK, "valueUrl": f"#{row_id}"}],
                "reference": reference,
            }
            for reference, row_id in listed
        ]
    return [reference for reference, _ in listed]


def _latest_stay(gathered: Gathered, origins: Origins) -> tuple[dict[str, Any], list[str]] | None:
    """The latest hospital stay the requester may see, if any: the stay,
    what the hospital sent about it and, once the person is discharged, the
    medicines it started and stopped. Built from the gathered records
    alone, so a stay, a record or a medicine hidden from the requester is
    neither listed nor counted, and names no hospital."""
    resources = gathered.resources
    found = stay.latest_stay(resources, lambda reference: _organisation(reference, resources))
    if found is None:
        return None
    encounter = resources[found.encounter]
    the_stay = Reconciled(
        (found.encounter,),
        stay.stay_row(found, encounter, resources.get),
        tuple(_source(encounter, origins)),
        False,
    )
    sent = stay.with_roles(encounter, reconcile(stay.sent(found, resources), resources, origins))
    entry = _headed(LATEST_STAY)
    listed = _listed(entry, LATEST_STAY, [], [the_stay, *sent])
    if found.discharged:
        changes = stay.changes(found, resources, origins)
        parts = []
        for section, facts in (
            (MEDICINES_STARTED, changes.started),
            (MEDICINES_STOPPED, changes.stopped),
        ):
            if not facts:
                parts.append(_empty(section))
                continue
            part = _headed(section)
            listed += _listed(part, section, [], facts)
            parts.append(part)
        entry["section"] = parts
    return entry, listed


def gateway_device(base_url: str) -> tuple[str, dict[str, Any]]:
    """The gateway as the documents' author: one Device, the same in every
    document it builds at this address."""
    full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, base_url + '/gateway-device')}"
    device = {
        "resourceType": "Device",
        "deviceName": [{"name": "London care gateway", "type": "user-friendly-name"}],
        "type": {"text": "FHIR interoperability gateway"},
        "version": [{"value": __version__}],
        "url": base_url,
    }
    return full_url, device


def build(
    kind: DocumentKind,
    patient: StoredVersion,
    gathered: Gathered,
    *,
    base_url: str,
    now: datetime | None = None,
    organisations: Mapping[str, Organisation] | None = None,
) -> Document:
    """The document of ``kind`` about ``patient`` from what was gathered for
    the requester; ``organisations``: the directory's answers for the codes
    it names (``gateway.directory.look_up``), so each reads as a name."""
    known = organisations or {}
    with narrative.organisations_known(known):
        return _build(kind, patient, gathered, base_url=base_url, now=now, organisations=known)


def _build(
    kind: DocumentKind,
    patient: StoredVersion,
    gathered: Gathered,
    *,
    base_url: str,
    now: datetime | None,
    organisations: Mapping[str, Organisation],
) -> Document:
    assert patient.content is not None
    moment = fhirjson.instant(now or datetime.now(UTC))
    subject = fhirjson.loads(patient.content)
    patient_ref = f"Patient/{patient.res_id}"
    provenances = [r for r in gathered.resources.values() if r["resourceType"] == "Provenance"]
    origins = _origins(_provenance_names(provenances), organisations)
    placed = _placed(kind, gathered)
    warnings = _heading_warnings(gathered, origins)
    sections = []
    in_sections: list[str] = []
    for section, members in placed:
        if section.key == LATEST_STAY.key:
            built = _latest_stay(gathered, origins)
        else:
            extra = _key_contacts(subject, gathered) if section.key == "care-team" else []
            built = _section(
                section, members, gathered, origins, extra, warnings.get(section.key, [])
            )
        if built is not None:
            sections.append(built[0])
            in_sections.extend(built[1])
    # An entry of two sections (a medicine the stay started is a current
    # one too) is in the Bundle once.
    in_sections = list(dict.fromkeys(in_sections))
    device_url, device = gateway_device(base_url)
    identifier = f"urn:uuid:{uuid.uuid4()}"
    composition = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "text": {"status": "generated", "div": narrative.subject_div(subject, kind.title)},
        "status": "final",
        "type": {
            "coding": [{"system": _LOINC, "code": kind.type_code, "display": kind.type_display}]
        },
        "subject": {"reference": patient_ref},
        "date": moment,
        "author": [{"reference": device_url, "display": "London care gateway"}],
        "title": kind.title,
        "event": [
            {
                "code": [{"coding": [{"system": _ACT_CLASS, "code": "PCPR"}]}],
                "period": {"end": moment},
            }
        ],
        "section": sections,
    }
    included = {
        f"{v.res_type}/{v.res_id}/_history/{v.version}"
        for v in [patient, *(gathered.versions[r] for r in in_sections)]
    }
    supporting = sorted(
        reference
        for reference, resource in gathered.resources.items()
        if reference not in in_sections
        and (resource["resourceType"] in _SUPPORTING or _provenance_of(resource, included))
    )
    entries = [
        {"fullUrl": f"{base_url}/Composition/{composition['id']}", "resource": composition},
        {"fullUrl": f"{base_url}/{patient_ref}", "resource": subject},
        {"fullUrl": device_url, "resource": device},
    ]
    for reference in [*in_sections, *supporting]:
        entries.append(
            {"fullUrl": f"{base_url}/{reference}", "resource": gathered.resources[reference]}
        )
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": identifier},
        "type": "document",
        "timestamp": moment,
        "entry": entries,
    }
    versions = [patient, *(gathered.versions[r] for r in [*in_sections, *supporting])]
    return Document(
        bundle=bundle,
        identifier=identifier,
        author=device_url,
        entries=[f"{v.res_type}/{v.res_id}/_history/{v.version}" for v in versions],
    )


def _provenance_of(resource: Resource, included: set[str]) -> bool:
    """A Provenance of a version in the document: how each entry came to be
    is reachable from the document itself."""
    if resource["resourceType"] != "Provenance":
        return False
    for target in resource.get("target") or []:
        reference = target.get("reference") if isinstance(target, dict) else None
        if isinstance(reference, str) and reference in included:
            return True
    return False


def _includes_nothing(res_type: str) -> bool:
    """These searches name no ``_include``: nothing is included."""
    return False
