"""The person, element by element: every source's record of a person lands
on one Patient (by NHS number), merged element by element with a stated
precedence, and the gateway keeps which source gave each element.

An element is a top-level element of the Patient (``address``,
``generalPractitioner``; a choice such as ``deceased[x]`` is one element
whichever type it takes), the names of one ``use`` (the official name and
the name a person is known by are two: a care home's "known as" stands
beside the practice's official name), an extension by its URL (the ethnic category),
an identifier by its system and value, or an extension of an identifier by
its URL (the NHS number's verification status). What a source states of an
element replaces what is on file when the source ranks at least as high for
that element (``PRECEDENCE``), and, between sources of the same rank, when
its record is not as at an earlier moment than the one on file; an element
it leaves out, or one a higher source gave, is kept; one no source has
stated is taken from any.

Which source gave each element (its organisation, format, record and that
record's moment) is kept in ``patient_element_source``, beside the Patient
and never in it: which organisations hold a record of a person is itself
something to protect. Each row holds a digest of the value the source gave,
so a value written since by anyone else (a client through the API, a merge
of two people) is known not to be that source's: the element is then
unattributed, and the next statement of it replaces it, as every statement
did before sources were kept (the registered practice aside:
``sources_on_file``). The loading ledger (``mapping_record``) keeps
each record as it came, not what it said of each element: deriving the
sources from it would mean mapping a person's every record again, in order,
at every load.

https://simplifier.net/hl7fhirukcorer4/ukcore-patient
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import fhirjson
from gateway.loading.ledger import any_loaded
from gateway.store import Querier, UnitOfWork
from mappings.ukcore import ETHNIC_URL, ODS

Json = dict[str, Any]

# An element, as the merge keys it: ("address",), ("deceased[x]",),
# ("name", use) ("" for names of no use), ("extension", url),
# ("identifier", system, value), or
# ("identifier", system, value, url) for an extension of an identifier.
Element = tuple[str, ...]

PRACTICE: Element = ("generalPractitioner",)
ETHNIC_CATEGORY: Element = ("extension", ETHNIC_URL)

# The formats whose record of a person ranks high: the practice's own
# record, and a hospital's administration system (its PAS is traced against
# the NHS spine). A council's return and a care home's export rank below
# them: what they say of the person is often what someone told them, or out
# of date (the person moved).
HIGH_FORMATS = ("gp-connect", "hl7v2")
_BY_FORMAT = {"gp-connect": 2, "hl7v2": 2, "cld": 1, "care-home": 1}
# The registered practice and the ethnic category are the practice's first:
# it registers the person (and the registration opens their whole record to
# a GP), and asks them their ethnic category; a hospital's statement of
# either is taken over a council's or a home's, never over the practice's.
_PRACTICE_FIRST = {**_BY_FORMAT, "gp-connect": 3}

PRECEDENCE: Mapping[Element, Mapping[str, int]] = {
    PRACTICE: _PRACTICE_FIRST,
    ETHNIC_CATEGORY: _PRACTICE_FIRST,
}
"""Each element's ranks of the formats, where they are not ``_BY_FORMAT``'s
(the practice's record and the hospital's alike, above a council's and a
home's alike). A format not named ranks below all."""

# What a Patient holds that is not an element of the person.
_NOT_ELEMENTS = frozenset({"resourceType", "id", "meta"})
_CHOICES = ("deceased", "multipleBirth")


@dataclass(frozen=True)
class Source:
    """Who stated an element: an organisation's record in a format."""

    org: str  # ODS code
    format: str  # as ``gateway load --format``
    record: str  # the source's own id for the record (the ledger's record_key)
    as_at: str | None  # the moment the record stands as at (none for a CLD row)


@dataclass(frozen=True)
class Merged:
    """A Patient as a source's record leaves it, and the elements that record
    gave (their names, each with the digest of its value now on file)."""

    resource: Json
    given: dict[str, str]


def rank(element: Element, fmt: str) -> int:
    """How ``fmt`` ranks for ``element``: higher wins."""
    return PRECEDENCE.get(element, _BY_FORMAT).get(fmt, 0)


def name(element: Element) -> str:
    """How ``patient_element_source`` names an element: ``address``,
    ``name:<use>``, ``extension:<url>``, ``identifier:<system>|<value>``, and
    ``identifier:<system>|<value> extension:<url>``."""
    kind, *rest = element
    if kind == "name":
        return f"name:{rest[0]}"
    if kind == "extension":
        return f"extension:{rest[0]}"
    if kind == "identifier":
        slot = f"identifier:{rest[0]}|{rest[1]}"
        return f"{slot} extension:{rest[2]}" if len(rest) == 3 else slot
    return kind


def digest(value: Any) -> str:
    """What a row keeps of an element's value: enough to tell it again."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def elements(patient: Json) -> dict[Element, Any]:
    """``patient``'s elements, in the order it holds them, each with its
    value (an extension's: the list of extensions with its URL; a choice's:
    the one key it takes, with its value)."""
    found: dict[Element, Any] = {}
    for key, value in patient.items():
        if key in _NOT_ELEMENTS:
            continue
        if key == "extension" and isinstance(value, list):
            for url, listed in _by_url(value).items():
                found["extension", url] = listed
        elif key == "name" and isinstance(value, list):
            for human_name in value:
                use = human_name.get("use") if isinstance(human_name, dict) else None
                found.setdefault(("name", str(use or "")), []).append(human_name)
        elif key == "identifier" and isinstance(value, list):
            for identifier in value:
                slot = (
                    "identifier",
                    str(identifier.get("system") or ""),
                    str(identifier.get("value") or ""),
                )
                found[slot] = {k: v for k, v in identifier.items() if k != "extension"}
                for url, listed in _by_url(identifier.get("extension") or []).items():
                    found[(*slot, url)] = listed
        elif choice := next((c for c in _CHOICES if key.startswith(c)), None):
            found[(f"{choice}[x]",)] = {key: value}
        else:
            found[(key,)] = value
    return found


def _by_url(extensions: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for extension in extensions:
        url = extension.get("url") if isinstance(extension, dict) else None
        grouped.setdefault(str(url or ""), []).append(extension)
    return grouped


def composed(resource: Json, found: Mapping[Element, Any]) -> Json:
    """A Patient of ``resource``'s id (and meta) holding ``found``."""
    patient: Json = {k: v for k, v in resource.items() if k in _NOT_ELEMENTS}
    identifiers: dict[Element, Json] = {}
    for element, value in found.items():
        kind = element[0]
        if len(element) == 1:
            if kind.endswith("[x]"):
                patient.update(value)
            else:
                patient[kind] = value
        elif kind in ("extension", "name"):
            patient.setdefault(kind, []).extend(value)
        else:
            slot = element[:3]
            if slot not in identifiers:
                identifiers[slot] = {}
                patient.setdefault("identifier", []).append(identifiers[slot])
            if len(element) == 4:
                identifiers[slot].setdefault("extension", []).extend(value)
            else:
                identifiers[slot].update(value)
    return patient


def standing(stored: Json, rows: Mapping[str, tuple[Source, str]]) -> dict[str, Source]:
    """Of ``rows`` (element name: its source and the digest of what it
    gave), the sources of the values still on file in ``stored``."""
    on_file = {name(e): digest(v) for e, v in elements(stored).items()}
    return {
        element: source for element, (source, gave) in rows.items() if on_file.get(element) == gave
    }


def _wins(element: Element, by: Source, over: Source | None) -> bool:
    """Whether ``by``'s statement of ``element`` replaces one ``over`` gave
    (``None``: one whose source is not known)."""
    if over is None:
        return True
    mine, theirs = rank(element, by.format), rank(element, over.format)
    if mine != theirs:
        return mine > theirs
    # Of two sources alike, the later stands: the record as at a later
    # moment, or, when either has none (a CLD row), the one loaded later.
    return not (by.as_at and over.as_at and by.as_at < over.as_at)


def with_what_is_known(
    resource: Json, stored: Json | None, by: Source, given: Mapping[str, Source]
) -> Merged:
    """The Patient ``resource`` (as ``by``'s record states it) merged with
    what is on file (``stored``, whose elements ``given`` names the sources
    of), element by element (see the module): a lower source never replaces
    a higher one's value, the same or a higher one's update does, and what
    no source has stated is taken from any. Identifiers are merged one per
    system and value. A statement of the registered practice that names the
    practice on file keeps what is known of it (``_practice_kept``)."""
    mine = elements(resource)
    if stored is None:
        return Merged(composed(resource, mine), {name(e): digest(v) for e, v in mine.items()})
    theirs = elements(stored)
    merged = dict(theirs)
    stated: dict[str, str] = {}
    for element, value in mine.items():
        called = name(element)
        if element in theirs:
            if not _wins(element, by, given.get(called)):
                continue
            if element == PRACTICE:
                value = _practice_kept(value, theirs[element], by.format in _NAMES_ITS_GPS)
            elif element[0] == "identifier" and len(element) == 3:
                value = {**theirs[element], **value}
        merged[element] = value
        stated[called] = digest(value)
    return Merged(composed(resource, merged), stated)


def _practice_code(references: Any) -> str | None:
    for reference in references if isinstance(references, list) else []:
        identifier = reference.get("identifier") if isinstance(reference, dict) else None
        if isinstance(identifier, dict) and identifier.get("system") == ODS:
            return str(identifier.get("value", "")).upper()
    return None


# The practice's own record names the person's GPs as the practice has them:
# naming none, it says they have none. Any other source naming the practice
# alone says nothing of its GPs.
_NAMES_ITS_GPS = frozenset({"gp-connect"})


def _practice_kept(stated: list[Json], on_file: list[Json], names_gps: bool) -> list[Json]:
    """``stated`` (the registered practice and GPs a source names), keeping,
    when it names the practice on file, what it leaves out of it: the
    practice's name, and the GPs on file if it names none and is not the
    practice's own record (``names_gps``). A hospital that names the
    practice by its bare ODS code says nothing new of it."""
    code = _practice_code(stated)
    if code is None or code != _practice_code(on_file):
        return stated
    practices = [r for r in on_file if _practice_code([r]) == code]
    shown = next((r["display"] for r in practices if "display" in r), None)
    kept = [
        {**r, "display": shown}
        if shown and "display" not in r and _practice_code([r]) == code
        else r
        for r in stated
    ]
    if not names_gps and all(_practice_code([r]) for r in stated):
        kept += [r for r in on_file if not _practice_code([r])]
    return kept


# A registered practice on file with no recorded source, for a person a
# practice's or a hospital's record has been loaded for (before sources were
# recorded, or since written otherwise): taken to be that source's, as the
# rule before element sources were kept had it. Used only to rank; never
# recorded.
_A_HIGH_SOURCE = Source("", "hl7v2", "", None)


def sources_on_file(reader: Querier, patient_id: str, stored: Json | None) -> dict[str, Source]:
    """The sources of the elements of ``stored`` (Patient ``patient_id``
    as on file), as ``with_what_is_known`` takes them."""
    if stored is None:
        return {}
    given = standing(stored, _rows(reader, patient_id))
    if (
        name(PRACTICE) not in given
        and PRACTICE[0] in stored
        and any_loaded(reader, patient_id, HIGH_FORMATS)
    ):
        given[name(PRACTICE)] = _A_HIGH_SOURCE
    return given


def _rows(reader: Querier, patient_id: str) -> dict[str, tuple[Source, str]]:
    return {
        str(element): (
            Source(str(org), str(fmt), str(record), None if as_at is None else str(as_at)),
            str(gave),
        )
        for element, org, fmt, record, as_at, gave in reader.select(
            "SELECT element, source_org, format, record_key, as_at, digest "
            "FROM patient_element_source WHERE patient_id = ?",
            [patient_id],
        )
    }


def note_given(uow: UnitOfWork, patient_id: str, by: Source, given: Mapping[str, str]) -> None:
    """Record ``by`` as the source of the elements of Patient ``patient_id``
    it gave (``Merged.given``), in the unit of work that writes them."""
    if not given:
        return
    loaded_at = fhirjson.instant()
    uow.execute_many(
        "INSERT INTO patient_element_source "
        "(patient_id, element, source_org, format, record_key, as_at, loaded_at, digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (patient_id, element) DO UPDATE SET source_org = excluded.source_org, "
        "format = excluded.format, record_key = excluded.record_key, as_at = excluded.as_at, "
        "loaded_at = excluded.loaded_at, digest = excluded.digest",
        [
            [patient_id, element, by.org, by.format, by.record, by.as_at, loaded_at, gave]
            for element, gave in given.items()
        ],
    )


def element_sources(reader: Querier, patient_id: str) -> dict[str, Source]:
    """Which source gave each element of Patient ``patient_id`` as it is
    on file, by element name (``name``); an element written otherwise (or
    before sources were kept) is not named."""
    found = reader.read("Patient", patient_id)
    if found is None or found.deleted or found.content is None:
        return {}
    return standing(fhirjson.loads(found.content), _rows(reader, patient_id))
