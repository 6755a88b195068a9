"""Human-readable narratives for the documents' sections: one row per resource
(or per fact several resources state, as ``reconcile`` groups them), and the
XHTML ``div`` a section or a Composition carries.

https://hl7.org/fhir/R4/narrative.html: a narrative is a ``div`` in the XHTML
namespace using a limited subset of XHTML (no scripts, no event attributes, no
forms). Everything here is written from a small set of elements (div, p, h1,
table, thead, tbody, tr, th, td, span) and two attributes (``class``, from
``CLASSES``, and a row's ``id``, which the entries it stands for point at),
and every piece of text from a resource goes through
``html.escape``: a record can say ``<script>`` and it is shown, never run.

A row says what a reader in a hurry needs (an ambulance crew reads a Red Bag in
seconds): what it is, the detail that matters, when, and its status. Dates keep
the precision they were written with and the local time written in an instant;
no time zone is converted, because the clock on the care home's wall is what
the record means.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway import directory
from gateway.directory import Organisation
from mappings.identity import NHS_NUMBER_SYSTEM

Resource = dict[str, Any]
Resolve = Callable[[str], dict[str, Any] | None]

XHTML = "http://www.w3.org/1999/xhtml"
# The only class names a narrative uses; the printable page styles these and
# drops any other class a stored narrative brings.
CLASSES = frozenset(
    {"rows", "what", "detail", "when", "status", "from", "org", "conflict", "empty", "subject"}
)

_ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
# The organisation directory's answers for the codes the document names
# (``gateway.directory``), for the narratives being written; none known
# outside ``organisations_known``.
_NOTHING_KNOWN: Mapping[str, Organisation] = MappingProxyType({})
_KNOWN: ContextVar[Mapping[str, Organisation]] = ContextVar("organisations_known")
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_SNOMED = "http://snomed.info/sct"
_LAST_ISSUE = "Extension-UKCore-MedicationStatementLastIssueDate"
_CARE_HOME_ROOM = "urn:london-care-gateway:care-home-room"
# How a hospital stay began and ended, as UK Core extends Encounter.
_ADMISSION_METHOD = "Extension-UKCore-AdmissionMethod"
_DISCHARGE_METHOD = "Extension-UKCore-DischargeMethod"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FHIR_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?"
)
# Characters XML 1.0 cannot carry at all; a record holding one would make the
# narrative unparseable, so they are dropped rather than escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# UCUM codes written where a unit for people belongs.
_UNITS = {
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "10*9/L": "\u00d710\u2079/L",
    "10*12/L": "\u00d710\u00b9\u00b2/L",
}
SYSTOLIC = {"8480-6", "271649006", "72313002"}
DIASTOLIC = {"8462-4", "271650006", "1091811000000102"}
_COURSE = {"acute": "Acute", "continuous": "Repeat", "seasonal": "Seasonal"}
_STATUS_WORDS = {
    "not-done": "Not done",
    "entered-in-error": "Entered in error",
    "in-progress": "In progress",
    "on-hold": "On hold",
}


@dataclass(frozen=True)
class Row:
    """One resource (or one fact several resources state) in a few words,
    as plain text (escaped when written)."""

    what: str
    detail: str = ""
    when: str = ""
    status: str = ""


@dataclass(frozen=True)
class Source:
    """Who recorded a fact, and when: one name in a row's From."""

    organisation: str  # as a reader sees it: "Primrose Row Surgery (F99C02)"
    on: str = ""  # the date it recorded the fact, as shown; "" when it gave none


# -- values ------------------------------------------------------------------------------


def format_date(value: Any) -> str:
    """``1934`` / ``Nov 1934`` / ``2 Nov 1934`` / ``14 Mar 2026 20:30``: the
    precision written, the local time written (the offset is not applied).
    Anything that is not a FHIR date is shown as it is."""
    if not isinstance(value, str):
        return ""
    found = _FHIR_DATE.fullmatch(value.strip())
    if not found:
        return value.strip()
    year, month, day, hour, minute = found.groups()
    if month is None:
        return year
    if not 1 <= int(month) <= 12:
        return value.strip()
    if day is None:
        return f"{_MONTHS[int(month) - 1]} {year}"
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return value.strip()
    shown = f"{int(day)} {_MONTHS[int(month) - 1]} {year}"
    if hour is None:
        return shown
    return f"{shown} {hour}:{minute}" if int(hour) < 24 and int(minute) < 60 else value.strip()


def format_period(period: Any) -> str:
    if not isinstance(period, dict):
        return ""
    start, end = format_date(period.get("start")), format_date(period.get("end"))
    if start and end:
        if start == end:
            return start
        # Two times on one day: "15 Sep 2025 10:30-10:45" (with an en dash).
        same_day = [re.fullmatch(r"(.+) (\d\d:\d\d)", shown) for shown in (start, end)]
        if same_day[0] and same_day[1] and same_day[0][1] == same_day[1][1]:
            return f"{start}\u2013{same_day[1][2]}"
        return f"{start} to {end}"
    if start:
        return f"From {start}"
    return f"Until {end}" if end else ""


def format_nhs_number(value: str) -> str:
    """``999 123 4567``, the way it is printed on NHS letters and cards."""
    digits = re.sub(r"\s", "", value)
    if re.fullmatch(r"\d{10}", digits):
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return value


def nhs_number(patient: Resource) -> str:
    for identifier in dicts_in(patient.get("identifier")):
        if identifier.get("system") == NHS_NUMBER_SYSTEM and text_of(identifier.get("value")):
            return format_nhs_number(identifier["value"])
    return ""


def patient_name(patient: Resource) -> str:
    """The official name as the NHS patient banner writes it: ``MADDOX,
    Winifred Joan (Mrs)``, so the family name cannot be misread."""
    name = _pick_name(patient.get("name"), ("official", "usual"))
    if name is None:
        return ""
    family = text_of(name.get("family"))
    given = " ".join(_strs(name.get("given")))
    prefix = " ".join(_strs(name.get("prefix")))
    if not family and not given:
        return text_of(name.get("text"))
    shown = f"{family.upper()}, {given}" if family and given else family.upper() or given
    return f"{shown} ({prefix})" if prefix else shown


def known_as(patient: Resource) -> str:
    """The name a person is called by, when it is not their official one."""
    for name in dicts_in(patient.get("name")):
        if name.get("use") in ("usual", "nickname") and name is not _pick_name(
            patient.get("name"), ("official", "usual")
        ):
            return _human_name(name)
    return ""


def text_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strs(value: Any) -> list[str]:
    return (
        [v.strip() for v in value if isinstance(v, str) and v.strip()]
        if isinstance(value, list)
        else []
    )


def _dict(value: Any) -> Resource:
    return value if isinstance(value, dict) else {}


def dicts_in(value: Any) -> list[Resource]:
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _join(parts: Iterable[str], sep: str = "; ") -> str:
    """Non-empty parts once each; after a full stop a space is enough."""
    out = ""
    seen: set[str] = set()
    for part in parts:
        part = part.strip()
        if not part or part in seen:
            continue
        seen.add(part)
        if out:
            out += " " if out.endswith((".", "!", "?")) and sep == "; " else sep
        out += part
    return out


def _concept(value: Any) -> str:
    """A CodeableConcept in words: its text, else a coding's display or code."""
    if not isinstance(value, dict):
        return ""
    if text_of(value.get("text")):
        return text_of(value["text"])
    codings = dicts_in(value.get("coding"))
    for coding in codings:
        if text_of(coding.get("display")):
            return text_of(coding["display"])
    for coding in codings:
        if text_of(coding.get("code")):
            return text_of(coding["code"])
    return ""


def _concepts(value: Any) -> list[str]:
    return [_concept(c) for c in dicts_in(value) if _concept(c)]


def codes_in(value: Any, system: str | None = None) -> set[str]:
    """The codes of a CodeableConcept or a list of them (of ``system``,
    when given), empty ones left out."""
    return {
        code
        for concept in dicts_in(value)
        for coding in dicts_in(concept.get("coding"))
        if (system is None or coding.get("system") == system)
        and (code := text_of(coding.get("code")))
    }


def _words(code: Any) -> str:
    """A FHIR code for people: ``in-progress`` becomes ``In progress``."""
    code = text_of(code)
    if not code:
        return ""
    return _STATUS_WORDS.get(code) or (code[0].upper() + code[1:]).replace("-", " ")


def _status_of(concept: Any) -> str:
    """A status CodeableConcept (clinicalStatus, verificationStatus): its text,
    else its code in words."""
    if not isinstance(concept, dict):
        return ""
    if text_of(concept.get("text")):
        return text_of(concept["text"])
    codes = sorted(codes_in(concept) - {""})
    return _words(codes[0]) if codes else _concept(concept)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return str(value)


def _unit(quantity: Resource) -> str:
    # A UCUM code with a unit for people ("Cel": °C) says it, whatever words
    # the source wrote ("C").
    code = text_of(quantity.get("code"))
    if code in _UNITS and quantity.get("system") == _UCUM:
        return _UNITS[code]
    unit = text_of(quantity.get("unit")) or code
    return _UNITS.get(unit, unit)


def _quantity(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    number = _number(value.get("value"))
    if not number:
        return ""
    number = text_of(value.get("comparator")) + number
    unit = _unit(value)
    if not unit or unit == "1":
        return number
    return f"{number}{unit}" if unit == "%" else f"{number} {unit}"


def _range(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    low, high = _dict(value.get("low")), _dict(value.get("high"))
    low_n, high_n = _number(low.get("value")), _number(high.get("value"))
    unit = _unit(high) or _unit(low)
    if low_n and high_n:
        return f"{low_n}\u2013{high_n} {unit}".strip()
    if low_n:
        return f"≥{low_n} {unit}".strip()
    return f"≤{high_n} {unit}".strip() if high_n else text_of(value.get("text"))


def _value(element: Resource) -> str:
    """An element's ``value[x]`` (an Observation's, a component's) in words."""
    kinds: dict[str, Callable[[Any], str]] = {
        "Quantity": _quantity,
        "CodeableConcept": _concept,
        "String": text_of,
        "Boolean": lambda v: ("Yes" if v else "No") if isinstance(v, bool) else "",
        "Integer": _number,
        "Range": _range,
        "DateTime": format_date,
        "Time": text_of,
        "Period": format_period,
        "Ratio": lambda v: (
            f"{_quantity(v.get('numerator'))}/{_quantity(v.get('denominator'))}"
            if isinstance(v, dict)
            else ""
        ),
    }
    for kind, shown in kinds.items():
        if "value" + kind in element:
            return shown(element["value" + kind])
    return ""


def _human_name(name: Any) -> str:
    if not isinstance(name, dict):
        return ""
    if text_of(name.get("text")):
        return text_of(name["text"])
    return " ".join(
        [*_strs(name.get("prefix")), *_strs(name.get("given")), text_of(name.get("family"))]
    ).strip()


def _pick_name(names: Any, uses: Sequence[str]) -> Resource | None:
    found = dicts_in(names)
    for use in uses:
        for name in found:
            if name.get("use") == use:
                return name
    return found[0] if found else None


def _name_of(resource: Resource) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name.strip()
    return _human_name(_pick_name(name, ("official", "usual")))


def _telecom(value: Any) -> str:
    shown = []
    for point in dicts_in(value):
        number = text_of(point.get("value"))
        if number:
            system = text_of(point.get("system"))
            shown.append(f"{_words(system)} {number}" if system else number)
    return ", ".join(shown)


def _address(value: Any) -> str:
    for address in dicts_in(value):
        if text_of(address.get("text")):
            return text_of(address["text"])
        parts = [
            *_strs(address.get("line")),
            text_of(address.get("city")),
            text_of(address.get("postalCode")),
        ]
        shown = ", ".join(p for p in parts if p)
        if shown:
            return shown
    return ""


@contextmanager
def organisations_known(known: Mapping[str, Organisation]) -> Iterator[None]:
    """Within it, an organisation named by its ODS code reads as the
    directory's ``known`` name with the code beside it."""
    token = _KNOWN.set(known)
    try:
        yield
    finally:
        _KNOWN.reset(token)


def organisation(code: str, display: str | None = None) -> str:
    """The organisation of ODS ``code`` in words: ``Primrose Row Surgery
    (F99C02)``; ``display`` (a name a record gave it) when the directory
    does not know it, else the code, saying so."""
    return directory.shown(code, _KNOWN.get(_NOTHING_KNOWN), display or None)


def _identifier(value: Any) -> str:
    for identifier in dicts_in(value):
        code = text_of(identifier.get("value"))
        if code:
            return organisation(code) if identifier.get("system") == _ODS else code
    return ""


def _ods_code(ref: Any) -> str:
    """The ODS code a Reference names by identifier, or ``""``."""
    identifier = ref.get("identifier") if isinstance(ref, dict) else None
    if isinstance(identifier, dict) and identifier.get("system") == _ODS:
        return text_of(identifier.get("value"))
    return ""


def _ods(resource: Resource) -> str:
    for identifier in dicts_in(resource.get("identifier")):
        if identifier.get("system") == _ODS and text_of(identifier.get("value")):
            return f"ODS {identifier['value'].strip()}"
    return ""


def _notes(resource: Resource) -> list[str]:
    shown = []
    for note in dicts_in(resource.get("note")):
        text = text_of(note.get("text"))
        if text:
            when = format_date(note.get("time"))
            shown.append(f"{text} ({when})" if when else text)
    return shown


def _referenced(ref: Any, resolve: Resolve) -> Resource | None:
    if isinstance(ref, dict) and text_of(ref.get("reference")):
        return resolve(ref["reference"].strip())
    return None


def _who(ref: Any, resolve: Resolve) -> str:
    """A Reference in words: its display, else the name of what it points at
    in the same document, else a business identifier. A bare resource id
    means nothing to a reader and is never shown."""
    if not isinstance(ref, dict):
        return ""
    if code := _ods_code(ref):
        return organisation(code, text_of(ref.get("display")))
    if text_of(ref.get("display")):
        return text_of(ref["display"])
    target = _referenced(ref, resolve)
    if target is not None:
        return _name_of(target) or _describe(target, _nothing).what
    return _identifier(ref.get("identifier"))


def _nothing(reference: str) -> Resource | None:
    return None


def _medication(resource: Resource, resolve: Resolve) -> str:
    named = _concept(resource.get("medicationCodeableConcept"))
    if named:
        return named
    ref = resource.get("medicationReference")
    target = _referenced(ref, resolve)
    if target is not None and _concept(target.get("code")):
        return _concept(target.get("code"))
    return _who(ref, resolve) or "Medication not named"


def _dosages(value: Any) -> list[str]:
    shown = []
    for dosage in dicts_in(value):
        text = text_of(dosage.get("text"))
        if not text:
            dose = next(
                (_quantity(d.get("doseQuantity")) for d in dicts_in(dosage.get("doseAndRate"))),
                "",
            )
            text = _join([dose, _concept(dosage.get("route"))], ", ")
        instruction = text_of(dosage.get("patientInstruction"))
        shown.append(_join([text, instruction]))
    return shown


def _extension(resource: Resource, url_ends: str) -> Resource | None:
    for extension in dicts_in(resource.get("extension")):
        if text_of(extension.get("url")).endswith(url_ends):
            return extension
    return None


def _first_date(resource: Resource, *keys: str) -> str:
    for key in keys:
        value = resource.get(key)
        shown = format_period(value) if isinstance(value, dict) else format_date(value)
        if shown:
            return shown
    return ""


# -- one summary per resource type ----------------------------------------------------------


def _condition(r: Resource, resolve: Resolve) -> Row:
    status = _status_of(r.get("clinicalStatus"))
    verification = codes_in(r.get("verificationStatus"))
    if verification & {"provisional", "differential", "unconfirmed", "refuted"}:
        status = _join([status, _status_of(r.get("verificationStatus")).lower()], ", ")
    onset = _first_date(r, "onsetDateTime", "onsetPeriod") or text_of(r.get("onsetString"))
    if not onset and isinstance(r.get("onsetAge"), dict):
        onset = f"aged {_quantity(r['onsetAge'])}"
    ended = _first_date(r, "abatementDateTime", "abatementPeriod") or text_of(
        r.get("abatementString")
    )
    if onset and ended:
        when = f"{onset} to {ended}"
    elif onset:
        when = onset if onset.startswith(("From", "aged")) else f"Since {onset}"
    elif ended:
        when = f"Ended {ended}"
    else:
        recorded = format_date(r.get("recordedDate"))
        when = f"Recorded {recorded}" if recorded else ""
    detail = _join(
        [
            _concept(r.get("severity")),
            *_concepts(r.get("bodySite")),
            *_notes(r),
        ]
    )
    return Row(_concept(r.get("code")) or "Condition not named", detail, when, status)


def _allergy(r: Resource, resolve: Resolve) -> Row:
    what = _concept(r.get("code")) or _join(
        [_concept(x.get("substance")) for x in dicts_in(r.get("reaction"))], ", "
    )
    reactions = []
    for reaction in dicts_in(r.get("reaction")):
        shown = _join(
            [*_concepts(reaction.get("manifestation")), text_of(reaction.get("description"))], ", "
        )
        severity = text_of(reaction.get("severity"))
        if shown or severity:
            reactions.append(f"{shown} ({severity})" if shown and severity else shown or severity)
    criticality = text_of(r.get("criticality"))
    detail = _join(
        [
            *reactions,
            f"Criticality {_words(criticality).lower()}" if criticality else "",
            *_notes(r),
        ]
    )
    status = _status_of(r.get("clinicalStatus"))
    if codes_in(r.get("verificationStatus")) & {"unconfirmed", "refuted", "entered-in-error"}:
        status = _join([status, _status_of(r.get("verificationStatus")).lower()], ", ")
    onset = _first_date(r, "onsetDateTime", "onsetPeriod") or text_of(r.get("onsetString"))
    recorded = format_date(r.get("recordedDate"))
    when = (f"Since {onset}" if onset and not onset.startswith("From") else onset) or (
        f"Recorded {recorded}" if recorded else ""
    )
    return Row(what or "Substance not named", detail, when, status)


def _medication_use(r: Resource, resolve: Resolve) -> Row:
    request = r["resourceType"] == "MedicationRequest"
    dosage = _dosages(r.get("dosageInstruction" if request else "dosage"))
    course = _COURSE.get(next(iter(codes_in(r.get("courseOfTherapyType"))), ""), "")
    # A care home's statement derives from the last administration it
    # recorded: when the last dose was given is what a hospital asks first.
    given = [
        text_of(a.get("effectiveDateTime"))
        for a in (_referenced(ref, resolve) for ref in dicts_in(r.get("derivedFrom")))
        if a is not None
        and a.get("resourceType") == "MedicationAdministration"
        and a.get("status") == "completed"
    ]
    # The latest as written (ISO text sorts by time within one offset).
    last = f"Last dose given {format_date(max(given))}" if any(given) else ""
    # A request's reason is one concept, a statement's a list of them.
    detail = _join([course, *dosage, *_concepts(r.get("statusReason")), *_notes(r), last])
    if request:
        when = format_date(r.get("authoredOn"))
    else:
        when = _first_date(r, "effectiveDateTime", "effectivePeriod")
        if not when and format_date(r.get("dateAsserted")):
            when = f"Recorded {format_date(r.get('dateAsserted'))}"
        issued = _extension(r, _LAST_ISSUE)
        if issued is not None and format_date(issued.get("valueDateTime")):
            when = _join([when, f"last issued {format_date(issued.get('valueDateTime'))}"])
    return Row(_medication(r, resolve), detail, when, _words(r.get("status")))


def _administration(r: Resource, resolve: Resolve) -> Row:
    dosage = _dict(r.get("dosage"))
    given = text_of(dosage.get("text")) or _join(
        [_quantity(dosage.get("dose")), _concept(dosage.get("route"))], ", "
    )
    detail = _join([f"Last dose given: {given}" if given else "Last dose given", *_notes(r)])
    when = _first_date(r, "effectiveDateTime", "effectivePeriod")
    status = {"completed": "Given", "not-done": "Not given"}.get(
        text_of(r.get("status")), _words(r.get("status"))
    )
    return Row(_medication(r, resolve), detail, when, status)


def _immunization(r: Resource, resolve: Resolve) -> Row:
    doses = []
    for protocol in dicts_in(r.get("protocolApplied")):
        number = _number(protocol.get("doseNumberPositiveInt")) or text_of(
            protocol.get("doseNumberString")
        )
        against = ", ".join(_concepts(protocol.get("targetDisease")))
        doses.append(_join([f"Dose {number}" if number else "", against], " against "))
    lot = text_of(r.get("lotNumber"))
    detail = _join(
        [*doses, _concept(r.get("statusReason")), f"Batch {lot}" if lot else "", *_notes(r)]
    )
    status = {"completed": "Given", "not-done": "Not given"}.get(
        text_of(r.get("status")), _words(r.get("status"))
    )
    when = _first_date(r, "occurrenceDateTime") or text_of(r.get("occurrenceString"))
    return Row(_concept(r.get("vaccineCode")) or "Vaccine not named", detail, when, status)


def _blood_pressure(components: list[Resource]) -> tuple[str, list[Resource]]:
    """``128/74 mmHg`` from systolic and diastolic components, and the rest."""

    def find(codes: set[str], word: str) -> Resource | None:
        for component in components:
            code = component.get("code")
            if codes_in(code) & codes or word in _concept(code).lower():
                return component
        return None

    systolic, diastolic = find(SYSTOLIC, "systolic"), find(DIASTOLIC, "diastolic")
    if systolic is None or diastolic is None or systolic is diastolic:
        return "", components
    high, low = _dict(systolic.get("valueQuantity")), _dict(diastolic.get("valueQuantity"))
    high_n, low_n = _number(high.get("value")), _number(low.get("value"))
    if not high_n or not low_n:
        return "", components
    unit_high, unit_low = _unit(high), _unit(low)
    shown = (
        f"{high_n}/{low_n} {unit_high}".strip()
        if unit_high == unit_low
        else f"{_quantity(high)}/{_quantity(low)}"
    )
    return shown, [c for c in components if c is not systolic and c is not diastolic]


def _observation_result(r: Resource, resolve: Resolve, depth: int = 0) -> str:
    """An Observation's value with its components, interpretation, range and,
    for a panel, its members (one level deep, so a loop cannot recurse)."""
    components = dicts_in(r.get("component"))
    pressure, components = _blood_pressure(components)
    # "128/74 mmHg (High)": the value and its interpretation read as one.
    head = _join([pressure, _value(r) or _concept(r.get("dataAbsentReason"))])
    interpretation = ", ".join(_concepts(r.get("interpretation")))
    parts = [f"{head} ({interpretation})" if head and interpretation else head]
    for component in components:
        shown = _value(component) or _concept(component.get("dataAbsentReason"))
        label = _concept(component.get("code"))
        parts.append(f"{label}: {shown}" if label and shown else shown)
    for reference_range in dicts_in(r.get("referenceRange"))[:1]:
        if "low" in reference_range or "high" in reference_range:
            shown = _range(reference_range)
            parts.append(f"range {shown}" if shown else "")
        else:
            parts.append(text_of(reference_range.get("text")))
    if depth == 0:
        for member in dicts_in(r.get("hasMember")):
            target = _referenced(member, resolve)
            if target is not None and target.get("resourceType") == "Observation":
                shown = _observation_result(target, resolve, depth + 1)
                label = _concept(target.get("code"))
                parts.append(f"{label}: {shown}" if label and shown else label or shown)
    return _join(parts)


def _quiet_status(status: Any) -> str:
    """Results are read as final; only another status is worth a word."""
    return "" if status in ("final", None) else _words(status)


def _observation(r: Resource, resolve: Resolve) -> Row:
    detail = _join([_observation_result(r, resolve), *_notes(r)])
    when = _first_date(r, "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued")
    return Row(
        _concept(r.get("code")) or "Observation", detail, when, _quiet_status(r.get("status"))
    )


def _report(r: Resource, resolve: Resolve) -> Row:
    results = []
    for ref in dicts_in(r.get("result")):
        target = _referenced(ref, resolve)
        if target is None:
            results.append(text_of(ref.get("display")))
            continue
        shown = _observation_result(target, resolve)
        label = _concept(target.get("code"))
        # A report's only result is often its own panel under the same name.
        if label == _concept(r.get("code")):
            results.append(shown)
        else:
            results.append(f"{label}: {shown}" if label and shown else label or shown)
    conclusion = text_of(r.get("conclusion"))
    performers = ", ".join(
        _who(p, resolve) for p in dicts_in(r.get("performer")) if _who(p, resolve)
    )
    detail = _join(
        [
            *results,
            f"Conclusion: {conclusion}" if conclusion else "",
            *_concepts(r.get("conclusionCode")),
            performers,
        ]
    )
    when = _first_date(r, "effectiveDateTime", "effectivePeriod")
    if not when and format_date(r.get("issued")):
        when = f"Issued {format_date(r.get('issued'))}"
    return Row(_concept(r.get("code")) or "Report", detail, when, _quiet_status(r.get("status")))


def _procedure(r: Resource, resolve: Resolve) -> Row:
    detail = _join(
        [
            *_concepts(r.get("bodySite")),
            *_concepts(r.get("reasonCode")),
            _concept(r.get("outcome")),
            *[_who(p.get("actor"), resolve) for p in dicts_in(r.get("performer"))],
            _who(r.get("location"), resolve),
            *_notes(r),
        ]
    )
    when = _first_date(r, "performedDateTime", "performedPeriod") or text_of(
        r.get("performedString")
    )
    return Row(_concept(r.get("code")) or "Procedure", detail, when, _words(r.get("status")))


def _care_plan(r: Resource, resolve: Resolve) -> Row:
    goals = []
    for ref in dicts_in(r.get("goal")):
        target = _referenced(ref, resolve)
        goals.append(
            f"Goal: {_concept(target.get('description'))}"
            if target is not None and _concept(target.get("description"))
            else text_of(ref.get("display"))
        )
    activities = [
        text_of(a["detail"].get("description")) or _concept(a["detail"].get("code"))
        for a in dicts_in(r.get("activity"))
        if isinstance(a.get("detail"), dict)
    ]
    detail = _join([text_of(r.get("description")), *goals, *activities, *_notes(r)])
    what = text_of(r.get("title")) or _join(_concepts(r.get("category")), ", ") or "Care plan"
    when = _first_date(r, "period", "created")
    return Row(what, detail, when, _words(r.get("status")))


def _narrative_text(resource: Resource) -> list[str]:
    """The paragraphs of a resource's own narrative as plain text, for the
    records whose substance a source wrote only there (a ReSPECT form's
    recommendations). Markup is dropped; the text is escaped again when
    written."""
    div = text_of(_dict(resource.get("text")).get("div"))
    if not div:
        return []
    div = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", div, flags=re.IGNORECASE | re.DOTALL)
    blocks = re.split(r"<(?:/?(?:p|li|tr|h[1-6]|div)|br)\b[^>]*>", div)
    plain = (html.unescape(re.sub(r"<[^>]*>", " ", block)) for block in blocks)
    return [" ".join(text.split()) for text in plain if text.strip()]


def _consent(r: Resource, resolve: Resolve) -> Row:
    what = _join(_concepts(r.get("category")), ", ") or _concept(r.get("scope")) or "Consent"
    provision = _dict(r.get("provision"))
    parts = [p for p in _narrative_text(r) if p != what]
    if not parts:
        codes = ", ".join(_concepts(provision.get("code")))
        kind = {"deny": "Refuses", "permit": "Agrees to"}.get(text_of(provision.get("type")), "")
        parts = [f"{kind}: {codes}" if kind and codes else codes]
        source = r.get("sourceAttachment")
        if isinstance(source, dict) and text_of(source.get("title")):
            parts.append(f"The signed original: {text_of(source['title'])}")
    for actor in dicts_in(provision.get("actor")):
        who = _who(actor.get("reference"), resolve)
        role = _concept(actor.get("role"))
        if who:
            parts.append(f"{role[:1].upper()}{role[1:]}: {who}" if role else who)
    when_parts = [format_date(r.get("dateTime"))]
    valid = format_period(provision.get("period"))
    if valid:
        when_parts.append(f"valid {valid[0].lower() + valid[1:]}")
    reviewed = [format_date(v.get("verificationDate")) for v in dicts_in(r.get("verification"))]
    if any(reviewed):
        when_parts.append(f"verified {[d for d in reviewed if d][-1]}")
    return Row(what, _join(parts), _join(when_parts), _words(r.get("status")))


def _flag(r: Resource, resolve: Resolve) -> Row:
    # The records a flag points at (flag-detail) are in the document in their
    # own rows; naming them again here would only lengthen the page.
    return Row(
        _concept(r.get("code")) or "Flag",
        ", ".join(_concepts(r.get("category"))),
        format_period(r.get("period")),
        _words(r.get("status")),
    )


def _episode(r: Resource, resolve: Resolve) -> Row:
    room = _extension(r, _CARE_HOME_ROOM)
    teams = [_who(t, resolve) for t in dicts_in(r.get("team"))]
    detail = _join(
        [
            _who(r.get("managingOrganization"), resolve),
            text_of(room.get("valueString")) if room else "",
            *teams,
        ]
    )
    what = _join(_concepts(r.get("type")), ", ") or "Episode of care"
    return Row(what, detail, format_period(r.get("period")), _words(r.get("status")))


def _service_request(r: Resource, resolve: Resolve) -> Row:
    priority = text_of(r.get("priority"))
    detail = _join(
        [
            *_concepts(r.get("category")),
            _concept(r.get("performerType")),
            *[_who(p, resolve) for p in dicts_in(r.get("performer"))],
            *_concepts(r.get("reasonCode")),
            *[_who(p, resolve) for p in dicts_in(r.get("reasonReference"))],
            f"Priority {priority}" if priority and priority != "routine" else "",
            *_notes(r),
        ]
    )
    when = _first_date(r, "occurrenceDateTime", "occurrencePeriod")
    if not when and format_date(r.get("authoredOn")):
        when = f"Requested {format_date(r.get('authoredOn'))}"
    what = _concept(r.get("code")) or "Request"
    return Row(what, detail, when, _words(r.get("status")))


def _task(r: Resource, resolve: Resolve) -> Row:
    code = _concept(r.get("code"))
    description = text_of(r.get("description"))
    business = _concept(r.get("businessStatus"))
    detail = _join(
        [
            description if code else "",
            f"Outcome: {business}" if business else "",
            _concept(r.get("reasonCode")),
            _who(r.get("owner"), resolve),
            *_notes(r),
        ]
    )
    when = _first_date(r, "executionPeriod", "authoredOn")
    return Row(code or description or "Task", detail, when, _words(r.get("status")))


def _encounter(r: Resource, resolve: Resolve) -> Row:
    kind = _dict(r.get("class"))
    klass = text_of(kind.get("display")) or text_of(kind.get("code"))
    stay = _dict(r.get("hospitalization"))
    admission = _extension(stay, _ADMISSION_METHOD)
    discharge = _extension(r, _DISCHARGE_METHOD)
    # A hospital stay says how it began (UK Core's admission method) where
    # a type would say what kind of visit it was.
    types = _join(_concepts(r.get("type")), ", ") or (
        _concept(admission.get("valueCodeableConcept")) if admission else ""
    )
    people = [_who(p.get("individual"), resolve) for p in dicts_in(r.get("participant"))]
    admitted_from = _concept(stay.get("admitSource"))
    discharged_to = _concept(stay.get("dischargeDisposition"))
    detail = _join(
        [
            (klass[0].upper() + klass[1:]) if klass and types else "",
            *[_who(loc.get("location"), resolve) for loc in dicts_in(r.get("location"))],
            _who(r.get("serviceProvider"), resolve),
            *people,
            *_concepts(r.get("reasonCode")),
            f"Admitted from: {admitted_from}" if admitted_from else "",
            _concept(discharge.get("valueCodeableConcept")) if discharge else "",
            f"Discharged to: {discharged_to}" if discharged_to else "",
        ]
    )
    what = types or (klass[0].upper() + klass[1:] if klass else "Encounter")
    return Row(what, detail, format_period(r.get("period")), _words(r.get("status")))


def _active(r: Resource) -> str:
    active = r.get("active")
    return "" if not isinstance(active, bool) else ("Active" if active else "Inactive")


def _related_person(r: Resource, resolve: Resolve) -> Row:
    relationship = ", ".join(_concepts(r.get("relationship")))
    detail = _join([relationship, _telecom(r.get("telecom")), _address(r.get("address"))])
    return Row(
        _name_of(r) or "Name not recorded", detail, format_period(r.get("period")), _active(r)
    )


def _practitioner(r: Resource, resolve: Resolve) -> Row:
    qualifications = [_concept(q.get("code")) for q in dicts_in(r.get("qualification"))]
    detail = _join([*qualifications, _telecom(r.get("telecom"))])
    return Row(_name_of(r) or "Name not recorded", detail, "", _active(r))


def _practitioner_role(r: Resource, resolve: Resolve) -> Row:
    roles = ", ".join(_concepts(r.get("code")))
    who = _who(r.get("practitioner"), resolve)
    detail = _join(
        [
            roles if who else "",
            *_concepts(r.get("specialty")),
            _who(r.get("organization"), resolve),
            _telecom(r.get("telecom")),
        ]
    )
    return Row(who or roles or "Role", detail, format_period(r.get("period")), _active(r))


def _organization(r: Resource, resolve: Resolve) -> Row:
    detail = _join(
        [
            _ods(r),
            *_concepts(r.get("type")),
            _telecom(r.get("telecom")),
            _address(r.get("address")),
        ]
    )
    return Row(_name_of(r) or _ods(r) or "Organisation", detail, "", _active(r))


def _location(r: Resource, resolve: Resolve) -> Row:
    detail = _join(
        [
            *_concepts(r.get("type")),
            text_of(r.get("description")),
            _address(r.get("address")),
            _telecom(r.get("telecom")),
            _who(r.get("managingOrganization"), resolve),
        ]
    )
    status = "" if r.get("status") == "active" else _words(r.get("status"))
    return Row(_name_of(r) or "Location", detail, "", status)


def _device(r: Resource, resolve: Resolve) -> Row:
    names = [
        text_of(n.get("name")) for n in dicts_in(r.get("deviceName")) if text_of(n.get("name"))
    ]
    what = _concept(r.get("type")) or (names[0] if names else "Device")
    detail = _join(
        [
            *names,
            text_of(r.get("manufacturer")),
            text_of(r.get("modelNumber")),
            *_notes(r),
        ]
    )
    return Row(what, detail, "", _words(r.get("status")))


def _list(r: Resource, resolve: Resolve) -> Row:
    # Entries grouped under their flag, in the order first seen: "Sent with
    # the resident: glasses; dentures. Kept at the home: walking frame."
    groups: dict[str, list[str]] = {}
    for entry in dicts_in(r.get("entry")):
        if entry.get("deleted") is True:
            continue
        item = entry.get("item")
        shown = _who(item, resolve)
        if not shown:
            target = _referenced(item, resolve)
            shown = _describe(target, _nothing).what if target is not None else ""
        if shown:
            groups.setdefault(_concept(entry.get("flag")), []).append(shown)
    detail = ". ".join(
        f"{flag}: {'; '.join(items)}" if flag else "; ".join(items)
        for flag, items in groups.items()
    )
    if not detail:
        detail = _concept(r.get("emptyReason"))
    what = text_of(r.get("title")) or _concept(r.get("code")) or "List"
    status = "" if r.get("status") == "current" else _words(r.get("status"))
    return Row(what, _join([detail, *_notes(r)]), format_date(r.get("date")), status)


def _document_reference(r: Resource, resolve: Resolve) -> Row:
    titles = [
        text_of(_dict(c.get("attachment")).get("title"))
        for c in dicts_in(r.get("content"))
        if text_of(_dict(c.get("attachment")).get("title"))
    ]
    what = (
        _concept(r.get("type"))
        or text_of(r.get("description"))
        or (titles[0] if titles else "Document")
    )
    detail = _join(
        [
            text_of(r.get("description")),
            *titles,
            *_concepts(r.get("category")),
            *[_who(a, resolve) for a in dicts_in(r.get("author"))],
            _who(r.get("custodian"), resolve),
        ]
    )
    created = [
        format_date(c["attachment"].get("creation"))
        for c in dicts_in(r.get("content"))
        if isinstance(c.get("attachment"), dict)
    ]
    when = format_date(r.get("date")) or next((c for c in created if c), "")
    status = _words(r.get("docStatus")) or _words(r.get("status"))
    return Row(what, detail, when, status)


def _care_team(r: Resource, resolve: Resolve) -> Row:
    members = []
    for participant in dicts_in(r.get("participant")):
        who = _who(participant.get("member"), resolve)
        role = ", ".join(_concepts(participant.get("role")))
        if who or role:
            members.append(f"{who} ({role})" if who and role else who or role)
    what = text_of(r.get("name")) or _join(_concepts(r.get("category")), ", ") or "Care team"
    # The managing organisation, unless a member already names it.
    managing = [
        who
        for who in (_who(o, resolve) for o in dicts_in(r.get("managingOrganization")))
        if who and not any(member.startswith(f"{who} (") or member == who for member in members)
    ]
    detail = _join([*members, *managing])
    return Row(what, detail, format_period(r.get("period")), _words(r.get("status")))


def _patient(r: Resource, resolve: Resolve) -> Row:
    number = nhs_number(r)
    born = format_date(r.get("birthDate"))
    detail = _join(
        [
            f"NHS number {number}" if number else "",
            f"Born {born}" if born else "",
            _words(r.get("gender")),
            _address(r.get("address")),
        ]
    )
    died = format_date(r.get("deceasedDateTime"))
    status = f"Died {died}" if died else ("Died" if r.get("deceasedBoolean") is True else "")
    return Row(patient_name(r) or "Name not recorded", detail, "", status)


def _medication_resource(r: Resource, resolve: Resolve) -> Row:
    return Row(_concept(r.get("code")) or "Medication", _concept(r.get("form")), "", "")


def _goal(r: Resource, resolve: Resolve) -> Row:
    targets = [_concept(t.get("measure")) for t in dicts_in(r.get("target"))]
    when = _first_date(r, "startDate") or format_date(r.get("statusDate"))
    return Row(
        _concept(r.get("description")) or "Goal",
        _join([*targets, *_notes(r)]),
        when,
        _words(r.get("lifecycleStatus")),
    )


_SKIPPED = {"meta", "id", "identifier", "contained", "extension", "modifierExtension"}


def _first_text(value: Any) -> str:
    """The first ``text``, ``display``, ``title``, ``name`` or ``description``
    found in a resource, depth first, outside its narrative and metadata."""
    if isinstance(value, dict):
        for key in ("text", "display", "title", "name", "description"):
            if text_of(value.get(key)):
                return text_of(value[key])
        for key, inner in value.items():
            if key in _SKIPPED or (key == "text" and isinstance(inner, dict)):
                continue
            found = _first_text(inner)
            if found:
                return found
    elif isinstance(value, list):
        for inner in value:
            found = _first_text(inner)
            if found:
                return found
    return ""


def _fallback(r: Resource, resolve: Resolve) -> Row:
    when = _first_date(r, "date", "authoredOn", "recorded", "created", "issued", "period")
    status = r.get("status")
    return Row(
        text_of(r.get("resourceType")) or "Resource",
        _first_text(r),
        when,
        _words(status) if isinstance(status, str) else "",
    )


_SUMMARIES: dict[str, Callable[[Resource, Resolve], Row]] = {
    "AllergyIntolerance": _allergy,
    "CarePlan": _care_plan,
    "CareTeam": _care_team,
    "Condition": _condition,
    "Consent": _consent,
    "Device": _device,
    "DiagnosticReport": _report,
    "DocumentReference": _document_reference,
    "Encounter": _encounter,
    "EpisodeOfCare": _episode,
    "Flag": _flag,
    "Goal": _goal,
    "Immunization": _immunization,
    "List": _list,
    "Location": _location,
    "Medication": _medication_resource,
    "MedicationAdministration": _administration,
    "MedicationRequest": _medication_use,
    "MedicationStatement": _medication_use,
    "Observation": _observation,
    "Organization": _organization,
    "Patient": _patient,
    "Practitioner": _practitioner,
    "PractitionerRole": _practitioner_role,
    "Procedure": _procedure,
    "RelatedPerson": _related_person,
    "ServiceRequest": _service_request,
    "Task": _task,
}


def _describe(resource: Resource, resolve: Resolve) -> Row:
    summary = _SUMMARIES.get(text_of(resource.get("resourceType")), _fallback)
    return summary(resource, resolve)


def summarise(resource: dict[str, Any], resolve: Callable[[str], dict[str, Any] | None]) -> Row:
    """One resource as one row. ``resolve("Medication/123")`` gives a resource
    referenced from the same document, or None; nothing else is looked up."""
    return _describe(resource, resolve)


# -- the words of a row that stands for several resources (``reconcile``) -------------


def concept_text(value: Any) -> str:
    """A CodeableConcept in words."""
    return _concept(value)


def concepts_text(value: Any) -> list[str]:
    """A CodeableConcept, or a list of them, in words: one for each that has any."""
    return _concepts(value)


def medication_name(resource: Resource, resolve: Resolve) -> str:
    """The medicine a statement, request or administration is about."""
    return _medication(resource, resolve)


def dosage_text(resource: Resource) -> str:
    """A statement's or request's dosage instructions in words."""
    key = "dosageInstruction" if resource.get("resourceType") == "MedicationRequest" else "dosage"
    return _join(_dosages(resource.get(key)))


def course_text(resource: Resource) -> str:
    """``Repeat``, ``Acute``: the course of therapy, when stated."""
    return _COURSE.get(next(iter(sorted(codes_in(resource.get("courseOfTherapyType")))), ""), "")


def last_issued(resource: Resource) -> str:
    """When a GP statement says the prescription was last issued, as written."""
    issued = _extension(resource, _LAST_ISSUE)
    return text_of(issued.get("valueDateTime")) if issued is not None else ""


def notes_of(resource: Resource) -> list[str]:
    return _notes(resource)


def in_words(code: Any) -> str:
    """A FHIR code for people: ``in-progress`` becomes ``In progress``."""
    return _words(code)


def join(parts: Iterable[str], sep: str = "; ") -> str:
    """Non-empty parts once each, in order."""
    return _join(parts, sep)


# -- XHTML -------------------------------------------------------------------------------


def _esc(text: str) -> str:
    """Text for XHTML: escaped, and a line break in a record kept as one."""
    lines = _NOT_XML.sub("", text).split("\n")
    return "<br/>".join(html.escape(line.rstrip("\r")) for line in lines)


def _div(inner: str) -> str:
    return f'<div xmlns="{XHTML}">{inner}</div>'


_COLUMNS = (("what", "What"), ("detail", "Detail"), ("when", "Date"), ("status", "Status"))


def _sources_cell(sources: Sequence[Source]) -> str:
    return "; ".join(
        f'<span class="org">{_esc(source.organisation)}</span>'
        + (f", {_esc(source.on)}" if source.on else "")
        for source in sources
    )


def section_div(
    rows: Sequence[Row],
    *,
    source_of: Sequence[Sequence[Source]] | None = None,
    ids: Sequence[str] | None = None,
    conflicting: Sequence[bool] | None = None,
) -> str:
    """A section's narrative: a table of What / Detail / Date / Status, and
    From (for each row, every organisation that recorded it, with when)
    when ``source_of`` is given. ``ids`` name the rows, so that the entries
    a row stands for can point at it; a row ``conflicting`` is one whose
    sources disagree. No rows give the empty narrative."""
    for name, given in (("source_of", source_of), ("ids", ids), ("conflicting", conflicting)):
        if given is not None and len(given) != len(rows):
            raise ValueError(f"{name} has {len(given)} entries for {len(rows)} rows")
    if not rows:
        return empty_div("None recorded")
    columns = [*_COLUMNS, ("from", "From")] if source_of is not None else list(_COLUMNS)
    head = "".join(f'<th class="{key}">{label}</th>' for key, label in columns)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="{key}">{_esc(value)}</td>'
            for (key, _), value in zip(
                _COLUMNS, [row.what, row.detail, row.when, row.status], strict=True
            )
        )
        if source_of is not None:
            cells += f'<td class="from">{_sources_cell(source_of[index])}</td>'
        attributes = ""
        if ids is not None:
            attributes += f' id="{_esc(ids[index])}"'
        if conflicting is not None and conflicting[index]:
            attributes += ' class="conflict"'
        body.append(f"<tr{attributes}>{cells}</tr>")
    return _div(
        f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def empty_div(reason: str) -> str:
    """The narrative of a section with nothing in it, saying so."""
    # A narrative must hold some text (FHIR invariant txt-2).
    return _div(f'<p class="empty">{_esc(reason.strip() or "Not available")}</p>')


def subject_div(patient: dict[str, Any], title: str) -> str:
    """The Composition's own narrative: the document's title and who it is
    about, enough to tell the right person from the wrong one."""
    gp = ", ".join(
        organisation(code, text_of(ref.get("display")))
        if (code := _ods_code(ref))
        else text_of(ref.get("display"))
        for ref in dicts_in(patient.get("generalPractitioner"))
    )
    facts = [
        ("Name", patient_name(patient) or "Not recorded"),
        ("Known as", known_as(patient)),
        ("NHS number", nhs_number(patient) or "Not recorded"),
        ("Date of birth", format_date(patient.get("birthDate")) or "Not recorded"),
        ("Gender", _words(patient.get("gender"))),
        ("Address", _address(patient.get("address"))),
        ("Registered GP", gp),
    ]
    rows = "".join(
        f"<tr><th>{label}</th><td>{_esc(value)}</td></tr>" for label, value in facts if value
    )
    return _div(
        f"<h1>{_esc(title.strip() or 'Document')}</h1>"
        f'<table class="subject"><tbody>{rows}</tbody></table>'
    )
