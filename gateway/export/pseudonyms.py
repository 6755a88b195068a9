"""Pseudonymised, minimised resources for population health (purpose
POPHLTH) bulk export: each resource consent lets out, rewritten just before
it is written as an NDJSON line.

Ids and references become keyed pseudonyms (HMAC-SHA256 with the export
project's key), so an analytics organisation can link a person's records
to one another and to nothing outside the export; what names, reaches or
locates a person (names, identifiers, contact details, addresses below the
postcode district, birth and death below the month, free text, attachments,
signatures) is removed. Every rule, element by element, and why, is in
``docs/export.md`` ("Pseudonymised output").

Pure: no store, no I/O. The input is never changed.

https://hl7.org/fhir/uv/bulkdata/export.html (the NDJSON output);
https://hl7.org/fhir/R4/security-labels.html (PSEUDED, the label each output
carries); https://hl7.org/fhir/R4/references.html (the reference forms).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, NamedTuple

from gateway.access.facts import person_element
from gateway.identifiers import ODS_SYSTEM
from mappings.identity import NHS_NUMBER_SYSTEM

__all__ = ["KEPT_TYPES", "PSEUDED", "PSEUDONYM_SYSTEM", "Pseudonymiser", "postcode_district"]

PSEUDONYM_SYSTEM = "urn:london-care-gateway:pseudonym"
"""The system of the one identifier a pseudonymised Patient keeps: its pseudonym."""

PSEUDED: dict[str, str] = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "PSEUDED",
    "display": "pseudonymized",
}
"""The security label every output carries."""

KEPT_TYPES = frozenset(
    {"Organization", "Location", "Medication", "HealthcareService", "Endpoint", "Substance"}
)
"""The types whose ids and references are kept as they are: the directory's,
no one's record and naming no one (``docs/export.md`` says why each). Every
other type, known or not, is pseudonymised."""

KEY_BYTES = 32
_PSEUDONYMS_KEPT = 100_000

# The types that are people: their names are HumanNames, their birth dates
# reduced to the month.
_PEOPLE = frozenset({"Patient", "RelatedPerson", "Practitioner"})

# Removed wherever they appear, in every type: narrative and free text,
# contact details, photographs and attachments, signatures, a Bundle entry's
# full URL (it names a server). ``identifier``, ``name``, ``title``,
# ``description`` and ``address`` have rules of their own (``_member``).
_DROPPED = frozenset(
    {
        "text",
        "note",
        "comment",
        "progress",
        "telecom",
        "photo",
        "contact",
        "patientInstruction",
        "conclusion",
        "signature",
        "availabilityExceptions",
        "requisition",
        "presentedForm",
        "attachment",
        "fullUrl",
        "implicitRules",
    }
)
# Choice elements and Identifier-typed elements by the type their name ends
# in: free text (String, Markdown), blobs, attachments, people's names and
# contact points, identifiers under other names (masterIdentifier,
# groupIdentifier, preAdmissionIdentifier, targetIdentifier,
# distinctIdentifier...), signatures, bare URIs, UUIDs and OIDs, waveforms
# (an ECG identifies its owner), and the metadata types a Task's input or
# an extension may hold, each with words of its own.
_DROPPED_SUFFIX = re.compile(
    r"[a-z][A-Za-z]*(String|Markdown|Base64Binary|Attachment|HumanName|ContactPoint"
    r"|Identifier|Signature|Uri|Url|Uuid|Oid|SampledData|RelatedArtifact|Expression"
    r"|ParameterDefinition|TriggerDefinition|DataRequirement|ContactDetail|Contributor"
    r"|UsageContext|Meta)"
)
# Removed from one type only.
_DROPPED_IN: dict[str, frozenset[str]] = {
    "Patient": frozenset({"link", "_birthDate", "_deceasedDateTime"}),
    "RelatedPerson": frozenset({"_birthDate"}),
    "Practitioner": frozenset({"_birthDate"}),
    # Who did what, from where, asking what: names, network addresses,
    # the query (an NHS number in it), free-text details.
    "AuditEvent": frozenset({"outcomeDesc", "altId", "network", "site", "query", "detail"}),
    # What singles out one device (a pacemaker's serial number is its wearer's).
    "Device": frozenset(
        {"udiCarrier", "lotNumber", "serialNumber", "deviceName", "url", "component"}
    ),
    # A client's endpoint, its credential headers, its words.
    "Subscription": frozenset({"reason", "error", "header", "endpoint"}),
    "Immunization": frozenset({"series"}),
    # Why a member of staff is away, in words (which it needs).
    "PractitionerRole": frozenset({"notAvailable"}),
    # An answer's date may be a date of birth ("When were you born?").
    "QuestionnaireResponse": frozenset({"valueDate", "valueDateTime", "valueTime"}),
    # Where a patient's home Location is, to the metre.
    "Location": frozenset({"position"}),
}
# A backbone element that means nothing without one of its elements, removed
# when that element was: (type, element) -> the elements it needs one of
# (a prefix: "value" for any value[x]).
_NEEDS: dict[tuple[str, str], str | tuple[str, ...]] = {
    ("Provenance", "agent"): "who",
    ("Provenance", "entity"): "what",
    ("List", "entry"): "item",
    ("Task", "input"): "value",
    ("Task", "output"): "value",
    ("Consent", "actor"): "reference",
    ("Consent", "data"): "reference",
    ("Immunization", "performer"): "actor",
    ("MedicationAdministration", "performer"): "actor",
    ("Procedure", "performer"): "actor",
    ("Encounter", "diagnosis"): "condition",
    ("EpisodeOfCare", "diagnosis"): "condition",
    ("Encounter", "location"): "location",
    ("AllergyIntolerance", "reaction"): "manifestation",
    ("Composition", "relatesTo"): "targetReference",
    ("Composition", "section"): ("entry", "section"),  # cmp-1, its text gone
    ("DocumentReference", "relatesTo"): "target",
    ("DocumentReference", "content"): "attachment",
    ("DiagnosticReport", "media"): "link",
    ("Observation", "component"): "code",
    ("Patient", "communication"): "language",
    ("RelatedPerson", "communication"): "language",
    ("Practitioner", "qualification"): "code",
}
# Required CodeableConcepts (and Consent.policyRule, which ppc-1 requires
# without a policy) that may hold nothing but words: when the words were
# all, they are said to be masked, as data-absent-reason says it, so the
# record stays valid and says something was there.
_MASKED = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "masked",
            "display": "Masked",
        }
    ]
}
_MASKED_WHEN_EMPTY: dict[tuple[str, tuple[str, ...]], bool] = {  # -> a list of them
    ("Observation", ("code",)): False,
    ("Observation", ("component", "code")): False,
    ("DiagnosticReport", ("code",)): False,
    ("Flag", ("code",)): False,
    ("Immunization", ("vaccineCode",)): False,
    ("MedicationStatement", ("medicationCodeableConcept",)): False,
    ("MedicationRequest", ("medicationCodeableConcept",)): False,
    ("MedicationAdministration", ("medicationCodeableConcept",)): False,
    ("AllergyIntolerance", ("reaction", "manifestation")): True,
    ("Composition", ("type",)): False,
    ("Task", ("input", "type")): False,
    ("Task", ("output", "type")): False,
    ("Consent", ("scope",)): False,
    ("Consent", ("category",)): True,
    ("Consent", ("policyRule",)): False,
}
# Extensions removed whatever their value: the time of birth.
_DROPPED_EXTENSIONS = frozenset({"http://hl7.org/fhir/StructureDefinition/patient-birthTime"})
# A Coding's display is kept only from terminologies whose displays are
# their own fixed text; a local system's display may be anything typed.
_DISPLAYED_SYSTEMS = (
    "http://snomed.info/sct",
    "http://loinc.org",
    "http://unitsofmeasure.org",
    "http://terminology.hl7.org/",
    "http://hl7.org/fhir/",
    "https://fhir.hl7.org.uk/",
    "https://fhir.nhs.uk/",
    "http://read.info/",
    "https://dmd.nhs.uk",
    "http://www.whocc.no/atc",
    "urn:ietf:bcp:47",
    "urn:iso:std:iso:",
)
_DATE_VALUES = frozenset({"valueDate", "valueDateTime", "valueInstant"})
_REFERENCE_KEYS = frozenset({"id", "extension", "reference", "type", "identifier", "display"})
_ANNOTATION_KEYS = frozenset({"id", "extension", "authorReference", "authorString", "time", "text"})
_CODING_KEYS = frozenset(
    {"id", "extension", "system", "version", "code", "display", "userSelected"}
)
_ADDRESS_KEPT = ("use", "type", "district", "country")
_PATIENT_RESIDENCE = "PTRES"  # v3-RoleCode: a patient's residence, as a Location's type

_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"([A-Z][A-Za-z]{{1,63}})/({_ID})(?:/_history/{_ID})?")
_ABSOLUTE = re.compile(rf"(https?://[^\s?#@/]+(?:/[^\s?#@/]+)*?)/([A-Z][A-Za-z]{{1,63}})/({_ID})")
_ABSOLUTE_VERSION = re.compile(rf"/_history/{_ID}")
_MONTH = re.compile(r"[0-9]{4}(-[0-9]{2})?")
# A UK postcode: its outward code (area and district), then optionally its
# inward code (sector and unit).
_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})?")


def postcode_district(postcode: str) -> str | None:
    """The postcode district (outward code) of a UK postcode, in capitals:
    "SW1A 1AA" -> "SW1A", "nw1 2db" -> "NW1"; ``None`` for what is not one."""
    found = _POSTCODE.fullmatch(" ".join(postcode.upper().split()))
    return found.group(1) if found else None


def _month(value: Any) -> str | None:
    """A date or dateTime to its year and month."""
    if not isinstance(value, str):
        return None
    found = _MONTH.match(value)
    return found.group(0) if found else None


def _present(value: Any) -> bool:
    """What may be written: FHIR JSON has no nulls, empty objects or arrays."""
    return value is not None and value != {} and value != []


class _Context(NamedTuple):
    """The resource being rewritten, as its elements' rules need it."""

    res_type: str
    person: str | None  # the Patient id whose record it is
    person_identifier: tuple[Any, Any] | None  # how its person element names them, if by identifier
    local: dict[str, str]  # contained ids -> their new ids


class Pseudonymiser:
    """Rewrites resources for one export project, with its secret key."""

    __slots__ = ("_key", "_made")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < KEY_BYTES:
            raise ValueError(f"a pseudonym key is at least {KEY_BYTES} random bytes")
        self._key = key
        # The pseudonyms made lately: a person's is made for each of their
        # records, and every reference to them.
        self._made: dict[str, str] = {}

    def __repr__(self) -> str:
        return "Pseudonymiser(<key>)"  # never the key

    def pseudonym(self, res_type: str, res_id: str) -> str:
        """HMAC-SHA256(key, "type/id") as 32 lowercase hex characters (128
        bits): a valid FHIR id, the same for the same resource in every
        export with this key."""
        message = f"{res_type}/{res_id}"
        made = self._made.get(message)
        if made is None:
            if len(self._made) >= _PSEUDONYMS_KEPT:
                self._made.clear()
            made = self._made[message] = hmac.new(
                self._key, message.encode(), hashlib.sha256
            ).hexdigest()[:32]
        return made

    def resource(self, resource: dict[str, Any], person: str | None) -> dict[str, Any]:
        """``resource`` pseudonymised and minimised, as a new dict.

        ``person``: the id of the Patient whose record it is, as the consent
        engine resolved it (also where the resource names them only by an
        identifier such as an NHS number), or ``None``.
        """
        return self._resource(resource, person, None)

    # The walk. Each step returns the element rewritten, or None to leave it out.

    def _resource(
        self, resource: dict[str, Any], person: str | None, local_id: str | None
    ) -> dict[str, Any]:
        res_type = str(resource.get("resourceType", ""))
        if res_type == "Patient" and local_id is None and isinstance(resource.get("id"), str):
            person = resource["id"]
        contained = [c for c in resource.get("contained") or [] if isinstance(c, dict)]
        local = {
            str(c["id"]): f"c{n}" for n, c in enumerate(contained) if isinstance(c.get("id"), str)
        }
        context = _Context(res_type, person, _person_identifier(resource), local)
        out: dict[str, Any] = {"resourceType": res_type}
        res_id = resource.get("id")
        if local_id is not None:
            out["id"] = local_id
        elif isinstance(res_id, str) and res_id:
            out["id"] = res_id if res_type in KEPT_TYPES else self.pseudonym(res_type, res_id)
        out["meta"] = _meta(resource.get("meta"))
        if contained:
            out["contained"] = [
                self._resource(c, person, local.get(str(c.get("id")), f"c{n}"))
                for n, c in enumerate(contained)
            ]
        for key, value in resource.items():
            if key in ("resourceType", "id", "meta", "contained"):
                continue
            rewritten = _masked(self._member(key, value, context, (key,)), context, (key,))
            if _present(rewritten):
                out[key] = rewritten
        _by_type(out, resource, context, self, local_id is not None)
        return _siblings(out)

    def _member(self, key: str, value: Any, context: _Context, path: tuple[str, ...]) -> Any:
        """One element ``key`` of an object at ``path``, rewritten."""
        bare = key[1:] if key.startswith("_") else key
        res_type = context.res_type
        at_root = len(path) == 1
        if (
            bare in _DROPPED
            or _DROPPED_SUFFIX.fullmatch(bare)
            or key in _DROPPED_IN.get(res_type, ())
            or bare in _DROPPED_IN.get(res_type, ())
        ):
            if (
                bare == "attachment"
                and res_type == "DocumentReference"
                and path[-2:-1] == ("content",)
            ):
                return _attachment(value)
            return None
        if bare == "identifier" and not (res_type in ("Organization", "Location") and at_root):
            return None
        if bare in ("name", "alias") and res_type not in KEPT_TYPES:
            return None  # a person's name; a care team's or device's, often one
        if bare == "title" and not (res_type == "Composition" and at_root):
            return None
        if bare == "description" and isinstance(value, str):
            return None
        if bare in ("address", "valueAddress"):
            if key.startswith("_") or (res_type in ("Organization", "Location") and at_root):
                return None  # an organisation's address: a care home's is its residents'
            return _addresses(value)
        if key in ("extension", "modifierExtension"):
            return self._extensions(value, context, path)
        if key.startswith("_"):
            return self._sibling(value, context, path)
        return self._value(value, context, path)

    def _value(self, value: Any, context: _Context, path: tuple[str, ...]) -> Any:
        if isinstance(value, list):
            items = [self._value(item, context, path) for item in value]
            return [item for item in items if _present(item)]
        if not isinstance(value, dict):
            return value
        if isinstance(value.get("resourceType"), str):
            return self._resource(value, context.person, None)  # a Bundle's entry
        if _is_reference(value):
            return self._reference(value, context, path)
        if "text" in value and value.keys() <= _ANNOTATION_KEYS:
            return None  # an Annotation, wherever it is
        if _is_coding(value):
            return _coding(value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "id":
                continue  # an element's id: anything its writer chose
            where = (*path, key)
            rewritten = _masked(self._member(key, item, context, where), context, where)
            if _present(rewritten):
                out[key] = rewritten
        out = _siblings(out)
        needed = _NEEDS.get((context.res_type, path[-1]))
        if needed is not None and not any(k.startswith(needed) for k in out):
            return None
        return out

    def _sibling(self, value: Any, context: _Context, path: tuple[str, ...]) -> Any:
        """A primitive's id and extensions (``_birthDate``); in a list, a
        null holds the place of an item with none."""
        if isinstance(value, list):
            items = [
                self._sibling(item, context, path) if item is not None else None for item in value
            ]
            return items if any(_present(item) for item in items) else None
        if not isinstance(value, dict):
            return None
        extensions = self._extensions(value.get("extension"), context, path)
        return {"extension": extensions} if extensions else None

    def _extensions(self, value: Any, context: _Context, path: tuple[str, ...]) -> Any:
        """Extensions with the same rules; one left with no value, and no
        extensions of its own, is left out."""
        if not isinstance(value, list):
            return None
        out = []
        for extension in value:
            if not isinstance(extension, dict) or extension.get("url") in _DROPPED_EXTENSIONS:
                continue
            rewritten: dict[str, Any] = {"url": extension.get("url")}
            for key, item in extension.items():
                if key in ("url", "id"):
                    continue
                if key == "extension":
                    item = self._extensions(item, context, path)
                elif key.startswith("value"):
                    item = self._member(key, item, context, (*path, key))
                    if key in _DATE_VALUES and context.res_type == "Patient":
                        item = _month(item)  # a death notified, a time of birth: the month
                else:
                    item = None
                if _present(item):
                    rewritten[key] = item
            if len(rewritten) > 1 and isinstance(rewritten["url"], str):
                out.append(rewritten)
        return out

    def _reference(
        self, reference: dict[str, Any], context: _Context, path: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """A Reference: its target pseudonymised, kept or removed; never its
        display or identifier, except an organisation's ODS code."""
        out: dict[str, Any] = {}
        target = reference.get("reference")
        kind = reference.get("type")
        rewritten = self._target(target, context) if isinstance(target, str) else None
        identifier = reference.get("identifier")
        if rewritten is not None:
            out["reference"] = rewritten
        elif isinstance(identifier, dict) and _ods(identifier) and kind in (None, "Organization"):
            out["identifier"] = {"system": ODS_SYSTEM, "value": identifier["value"]}
        elif context.person is not None and _names_person(reference, context, path):
            out["reference"] = f"Patient/{self.pseudonym('Patient', context.person)}"
        else:
            return None
        if isinstance(kind, str):
            out["type"] = kind
        extensions = self._extensions(reference.get("extension"), context, path)
        if extensions:
            out["extension"] = extensions
        return out

    def _target(self, target: str, context: _Context) -> str | None:
        """``Reference.reference`` rewritten, or ``None`` to remove it."""
        if target.startswith("#"):
            if target == "#":
                return target
            local = context.local.get(target[1:])
            return None if local is None else f"#{local}"
        relative = _RELATIVE.fullmatch(target)
        if relative is not None:
            res_type, res_id = relative.groups()
            if res_type in KEPT_TYPES:
                return f"{res_type}/{res_id}"
            return f"{res_type}/{self.pseudonym(res_type, res_id)}"
        absolute = _ABSOLUTE.fullmatch(_ABSOLUTE_VERSION.sub("", target, count=1))
        if absolute is not None and absolute.group(2) in KEPT_TYPES:
            return "/".join(absolute.groups())
        return None  # a urn:, a search, a person's record on another server


def _person_identifier(resource: dict[str, Any]) -> tuple[Any, Any] | None:
    element = person_element(str(resource.get("resourceType")))
    reference = resource.get(element) if element is not None else None
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return (identifier.get("system"), identifier["value"])
    return None


def _names_person(reference: dict[str, Any], context: _Context, path: tuple[str, ...]) -> bool:
    """Whether a Reference whose target cannot be kept names the person whose
    record this is: the type's own person element (naming a Patient, by
    identifier or by a reference that cannot be followed), or a Patient
    named elsewhere by the same identifier."""
    kind = reference.get("type")
    if kind not in (None, "Patient") and not str(kind).endswith("/StructureDefinition/Patient"):
        return False
    if path == (person_element(context.res_type),):
        target = reference.get("reference")
        return (
            kind is not None
            or isinstance(reference.get("identifier"), dict)
            or (isinstance(target, str) and "Patient" in target)
        )
    identifier = reference.get("identifier")
    if not isinstance(identifier, dict) or context.person_identifier is None:
        return False
    named = (identifier.get("system"), identifier.get("value"))
    return named == context.person_identifier and (
        kind is not None or named[0] == NHS_NUMBER_SYSTEM
    )


def _ods(identifier: Any) -> bool:
    return (
        isinstance(identifier, dict)
        and identifier.get("system") == ODS_SYSTEM
        and isinstance(identifier.get("value"), str)
        and bool(identifier["value"])
    )


def _is_reference(value: dict[str, Any]) -> bool:
    return (
        value.keys() <= _REFERENCE_KEYS
        and not isinstance(value.get("type"), dict | list)
        and (
            "reference" in value
            or isinstance(value.get("identifier"), dict)
            or isinstance(value.get("display"), str)
        )
    )


def _is_coding(value: dict[str, Any]) -> bool:
    return value.keys() <= _CODING_KEYS and ("code" in value or "system" in value)


def _coding(coding: dict[str, Any]) -> dict[str, Any] | None:
    """A Coding; its display only from a terminology whose displays are fixed."""
    out: dict[str, Any] = {
        k: coding[k] for k in ("system", "version", "code", "userSelected") if k in coding
    }
    system = coding.get("system")
    if isinstance(system, str) and system.startswith(_DISPLAYED_SYSTEMS) and "display" in coding:
        out["display"] = coding["display"]
    return out if ("code" in out or "system" in out) else None


def _meta(meta: Any) -> dict[str, Any]:
    """``meta`` without its source (the system that wrote it), labelled PSEUDED."""
    meta = meta if isinstance(meta, dict) else {}
    out: dict[str, Any] = {k: meta[k] for k in ("versionId", "lastUpdated") if k in meta}
    profiles = [p for p in meta.get("profile") or [] if isinstance(p, str)]
    if profiles:
        out["profile"] = profiles
    for key in ("security", "tag"):
        codings = [c for c in (_coding(c) for c in meta.get(key) or [] if isinstance(c, dict)) if c]
        if codings:
            out[key] = codings
    security = out.setdefault("security", [])
    if not any(
        (c.get("system"), c.get("code")) == (PSEUDED["system"], PSEUDED["code"]) for c in security
    ):
        security.append(dict(PSEUDED))
    return out


def _address(address: Any) -> dict[str, Any] | None:
    """An address to its use, type, district (borough), country and postcode
    district; ``None`` when nothing of where remains."""
    if not isinstance(address, dict):
        return None
    out = {k: address[k] for k in _ADDRESS_KEPT if isinstance(address.get(k), str)}
    postcode = address.get("postalCode")
    district = postcode_district(postcode) if isinstance(postcode, str) else None
    if district is not None:
        out["postalCode"] = district
    return out if out.keys() & {"district", "country", "postalCode"} else None


def _addresses(value: Any) -> Any:
    if isinstance(value, dict):
        return _address(value)
    if not isinstance(value, list):
        return None
    out: list[dict[str, Any]] = []
    for item in value:
        reduced = _address(item)
        if reduced is not None and reduced not in out:
            out.append(reduced)
    return out


def _attachment(value: Any) -> dict[str, Any] | None:
    """A DocumentReference's attachment (which it must have): its media type only."""
    if isinstance(value, dict) and isinstance(value.get("contentType"), str):
        return {"contentType": value["contentType"]}
    return None


def _masked(rewritten: Any, context: _Context, path: tuple[str, ...]) -> Any:
    """``rewritten``, or where it is a required concept left empty, masked."""
    if _present(rewritten):
        return rewritten
    as_list = _MASKED_WHEN_EMPTY.get((context.res_type, path))
    if as_list is None:
        return rewritten
    return [_masked_concept()] if as_list else _masked_concept()


def _masked_concept() -> dict[str, Any]:
    return {"coding": [dict(_MASKED["coding"][0])]}


def _siblings(out: dict[str, Any]) -> dict[str, Any]:
    """Without the ``_name`` of a primitive ``name`` left out."""
    for key in [k for k in out if k.startswith("_") and k[1:] not in out]:
        del out[key]
    return out


def _by_type(
    out: dict[str, Any],
    resource: dict[str, Any],
    context: _Context,
    pseudonymiser: Pseudonymiser,
    contained: bool,
) -> None:
    """The rules of one type beyond the walk's."""
    res_type = context.res_type
    if res_type in _PEOPLE:
        _reduce_to_month(out, "birthDate")
    if res_type == "Patient":
        _reduce_to_month(out, "deceasedDateTime")
        if not contained and "id" in out:
            out["identifier"] = [{"system": PSEUDONYM_SYSTEM, "value": out["id"]}]
    elif res_type == "Composition":
        out["title"] = _document_title(resource)
    elif res_type == "Location" and _PATIENT_RESIDENCE in _codes(resource.get("type")):
        out.pop("name", None)  # "Mr Smith's flat"
        out.pop("alias", None)


def _reduce_to_month(out: dict[str, Any], key: str) -> None:
    if key in out:
        month = _month(out[key])
        if month is None:
            del out[key]
        else:
            out[key] = month


def _codes(concepts: Any) -> set[Any]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return {
        coding.get("code")
        for concept in concepts or []
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
        if isinstance(coding, dict)
    }


def _document_title(composition: dict[str, Any]) -> str:
    """A title a Composition must have, in place of its own (which may name
    its person): its type's display, where that is a terminology's own."""
    kind = composition.get("type")
    for coding in kind.get("coding") or [] if isinstance(kind, dict) else []:
        kept = _coding(coding) if isinstance(coding, dict) else None
        if kept is not None and isinstance(kept.get("display"), str):
            return str(kept["display"])
    return "Document"
