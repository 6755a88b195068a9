"""Pseudonymised output for population health bulk export (issue 28): ids and
references keyed, and nothing that names, reaches or locates a person left
in what leaves: checked rule by rule, and on every example resource the
repository has (R4 fixtures, the mappings' golden outputs and a freshly
generated demo London run through the real mappings), whose output is
scanned for every name, address line, postcode, phone number, email,
NHS number and identifier of its input and validated as the gateway
validates a write."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import RESOURCES
from conformance.validation import validate_resource
from gateway.access.facts import PERSONAL_TYPES, whose_record
from gateway.demo.generate import generate
from gateway.export.pseudonyms import (
    KEPT_TYPES,
    NHS_NUMBER_SYSTEM,
    PSEUDED,
    PSEUDONYM_SYSTEM,
    Pseudonymiser,
    postcode_district,
)
from gateway.identifiers import ODS_SYSTEM
from gateway.loading.sources import READERS

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PSEUDO = Pseudonymiser(KEY)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NHS = {"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}
MASKED = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "masked",
            "display": "Masked",
        }
    ]
}
HEX32 = re.compile(r"[0-9a-f]{32}")

# Required elements the rules remove for privacy, so that an output may lack
# them though its input had them: (type, path, why).
REMOVED_REQUIRED = {
    # The observer was named only in words (a display) or by a local
    # identifier: nothing of it may leave.
    ("AuditEvent", "AuditEvent.source.observer"),
    # A client's reason for a Subscription is its own words.
    ("Subscription", "Subscription.reason"),
}


def pseudonymised(resource: dict[str, Any], person: str | None = None) -> dict[str, Any]:
    return PSEUDO.resource(resource, person)


# The examples.


def _flatten(found: Any) -> Iterator[dict[str, Any]]:
    if isinstance(found, list):
        for item in found:
            yield from _flatten(item)
    elif isinstance(found, dict) and "resourceType" in found:
        yield found


def _records(found: Any) -> Iterator[list[dict[str, Any]]]:
    """A golden output's records: a list of resources, or a list of them."""
    if isinstance(found, list) and any(isinstance(item, list) for item in found):
        for item in found:
            yield from _records(item)
    else:
        yield list(_flatten(found))


def _fixture_examples() -> list[tuple[str, dict[str, Any], str | None]]:
    """Each fixture resource, with whom it is about as the consent engine
    would resolve it: the Patient it names, or the Patient of its record
    where it names them by identifier (or by a conditional reference)."""
    examples = []
    for path in sorted(FIXTURES.glob("r4/*.json")) + sorted(FIXTURES.glob("*/*.expected.json")):
        for r, record in enumerate(_records(json.loads(path.read_text()))):
            patients = [p["id"] for p in record if p["resourceType"] == "Patient"]
            for n, resource in enumerate(record):
                whose = whose_record(resource)
                person = whose.patient_id
                if person is None and resource["resourceType"] in PERSONAL_TYPES and patients:
                    person = patients[0]
                examples.append((f"{path.parent.name}/{path.name}#{r}.{n}", resource, person))
    return examples


@pytest.fixture(scope="module")
def demo_examples(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[str, dict[str, Any], str | None]]:
    """Sixty people of the demo's London, written as its four sources write
    them and mapped by the real mappings, with whom each record is about."""
    out = tmp_path_factory.mktemp("demo")
    manifest = generate(out, 60, 7, date(2026, 11, 24))
    examples = []
    for source in manifest.files:
        with (out / source.path).open("rb") as stream:
            for record in READERS[source.format](stream, source.source_org):
                for n, resource in enumerate(record.resources or []):
                    name = f"{source.path}:{record.where}#{n}"
                    examples.append((name, resource, record.patient_id))
    assert len(examples) > 1000
    return examples


def _all_examples(
    demo: list[tuple[str, dict[str, Any], str | None]],
) -> list[tuple[str, dict[str, Any], str | None]]:
    return _fixture_examples() + demo


# What must not leave: every name part, address line, full postcode, phone
# number, email and identifier value of the input.


def _secrets(resource: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    res_type = resource["resourceType"]

    def identifier(value: Any, root: bool) -> None:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                continue
            public = item.get("system") == ODS_SYSTEM or (
                root and res_type in ("Organization", "Location")
            )
            if not public:
                found.add(item["value"])
                if item.get("system") == NHS_NUMBER_SYSTEM and len(item["value"]) == 10:
                    number = item["value"]
                    found.add(f"{number[:3]} {number[3:6]} {number[6:]}")

    def walk(value: Any, key: str, depth: int) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, key, depth)
            return
        if not isinstance(value, dict):
            return
        if key in ("name", "valueHumanName") and (
            "family" in value or "given" in value or "text" in value
        ):
            found.update(v for v in [value.get("family"), value.get("text")] if v)
            found.update(value.get("given") or [])
        if key in ("address", "valueAddress"):
            found.update(value.get("line") or [])
            postcode = value.get("postalCode")
            if isinstance(postcode, str) and len(postcode.replace(" ", "")) > 4:
                found.update({postcode, postcode.replace(" ", "")})
        if key in ("telecom", "contact") and isinstance(value.get("value"), str):
            found.add(value["value"])
        for child, item in value.items():
            if child == "identifier" or child.endswith("Identifier"):
                identifier(item, depth == 0)
            if child == "display" and not {"code", "system"} & value.keys():
                target = value.get("reference")
                if not (isinstance(target, str) and target.split("/")[0] in KEPT_TYPES):
                    # A Reference's display (often a person's name), as a
                    # whole string: a condition's may also start a code's.
                    found.add(json.dumps(item, ensure_ascii=False))
            walk(item, child, depth + 1)

    walk(resource, "", 0)
    short = {s for s in found if not isinstance(s, str) or len(s) < 3}
    # A Reference's display that is also a code's ("Asthma") is the code's.
    short |= {json.dumps(d, ensure_ascii=False) for d in _coded_displays(resource)}
    if res_type in KEPT_TYPES:  # its own name is public: "Camden Council" on "Camden Road"
        short |= {s for s in found if isinstance(s, str) and s in str(resource.get("name"))}
    return found - short - {"London", "GB"}


def _coded_displays(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _coded_displays(item)
    elif isinstance(value, dict):
        if "code" in value and isinstance(value.get("display"), str):
            yield value["display"]
        for item in value.values():
            yield from _coded_displays(item)


def _text(output: dict[str, Any]) -> str:
    """The output as JSON, each pseudonym masked (a hex pseudonym may hold a
    short number by chance)."""
    return HEX32.sub("#", json.dumps(output, ensure_ascii=False))


def test_nothing_identifying_leaves_any_example(
    demo_examples: list[tuple[str, dict[str, Any], str | None]],
) -> None:
    """Every example's output holds none of its input's names, address
    lines, postcodes, phone numbers, emails, NHS numbers, identifiers or
    Reference displays (Organization and Location identifiers, ODS codes,
    are public and kept)."""
    leaks = []
    scanned = 0
    for name, resource, person in _all_examples(demo_examples):
        secrets = _secrets(resource)
        scanned += len(secrets)
        text = _text(pseudonymised(resource, person))
        leaks += [(name, secret) for secret in sorted(secrets) if secret in text]
    assert scanned > 1000
    assert leaks == []


def test_every_example_stays_valid(
    demo_examples: list[tuple[str, dict[str, Any], str | None]],
) -> None:
    """Every output is valid FHIR R4 as the gateway validates a write (its
    UK Core profile claims included), but for the required elements listed in
    ``REMOVED_REQUIRED`` that were removed for privacy; and where the input
    was already invalid, the output has no error the input did not."""
    problems = []
    for name, resource, person in _all_examples(demo_examples):
        res_type = resource["resourceType"]
        before = {(i.path, i.message) for i in validate_resource(resource, res_type)}
        for issue in validate_resource(pseudonymised(resource, person), res_type):
            if (issue.path, issue.message) in before or (res_type, issue.path) in REMOVED_REQUIRED:
                continue
            problems.append((name, issue.path, issue.message))
    assert problems == []


def test_the_input_is_never_changed(
    demo_examples: list[tuple[str, dict[str, Any], str | None]],
) -> None:
    for _, resource, person in _all_examples(demo_examples):
        before = copy.deepcopy(resource)
        pseudonymised(resource, person)
        assert resource == before


def test_every_output_is_labelled_and_has_nothing_empty(
    demo_examples: list[tuple[str, dict[str, Any], str | None]],
) -> None:
    def empty(value: Any) -> bool:
        if value in ({}, [], None, ""):
            return True
        if isinstance(value, dict):
            return any(empty(v) for k, v in value.items() if not k.startswith("_"))
        if isinstance(value, list):
            return any(empty(v) for v in value)
        return False

    for name, resource, person in _all_examples(demo_examples):
        output = pseudonymised(resource, person)
        assert PSEUDED in output["meta"]["security"], name
        assert "source" not in output["meta"], name
        assert not empty(output), name


# Pseudonyms.


def test_the_same_key_gives_the_same_pseudonym_and_another_key_another() -> None:
    again = Pseudonymiser(bytes(KEY))
    assert PSEUDO.pseudonym("Patient", "42") == again.pseudonym("Patient", "42")
    assert PSEUDO.pseudonym("Patient", "42") != Pseudonymiser(OTHER_KEY).pseudonym("Patient", "42")
    assert PSEUDO.pseudonym("Patient", "42") != PSEUDO.pseudonym("Observation", "42")


def test_a_pseudonym_is_hmac_sha256_of_type_and_id_as_a_fhir_id() -> None:
    import hashlib
    import hmac

    expected = hmac.new(KEY, b"Patient/42", hashlib.sha256).hexdigest()[:32]
    assert PSEUDO.pseudonym("Patient", "42") == expected
    assert re.fullmatch(r"[0-9a-f]{32}", expected)


def test_a_short_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")
    assert KEY.hex() not in repr(PSEUDO) and str(KEY) not in repr(PSEUDO)


def test_a_reference_and_the_id_it_points_at_agree() -> None:
    patient = pseudonymised({"resourceType": "Patient", "id": "p1"})
    condition = pseudonymised(
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}, "p1"
    )
    encounter = pseudonymised(
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "IMP"},
            "diagnosis": [{"condition": {"reference": "Condition/c1/_history/3"}}],
        }
    )
    assert condition["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert encounter["diagnosis"] == [{"condition": {"reference": f"Condition/{condition['id']}"}}]
    assert patient["identifier"] == [{"system": PSEUDONYM_SYSTEM, "value": patient["id"]}]


def test_the_kept_types_are_the_directorys() -> None:
    """Organization, Location and Medication of the types served (and the
    directory's types a record may point at); none is a kind of record that
    is a person's, and people (staff, relatives) are pseudonymised."""
    assert KEPT_TYPES & set(RESOURCES) == {"Organization", "Location", "Medication"}
    assert not KEPT_TYPES & PERSONAL_TYPES
    for res_type in sorted(set(RESOURCES) - KEPT_TYPES):
        output = pseudonymised({"resourceType": res_type, "id": "x1"})
        assert output["id"] == PSEUDO.pseudonym(res_type, "x1")
    for res_type in sorted(KEPT_TYPES):
        assert pseudonymised({"resourceType": res_type, "id": "x1"})["id"] == "x1"


# References.


def _observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o1", "status": "final", "code": {}, **elements}


def test_references_to_kept_types_stay_and_displays_and_identifiers_go() -> None:
    output = pseudonymised(
        _observation(
            performer=[
                {
                    "reference": "Organization/RKE",
                    "display": "Whittington Health",
                    "identifier": {"system": ODS_SYSTEM, "value": "RKE"},
                },
                {"reference": "Practitioner/dr-jones", "display": "Dr Jones"},
                {"display": "Sister Mary on ward 7"},
            ]
        )
    )
    assert output["performer"] == [
        {"reference": "Organization/RKE"},
        {"reference": f"Practitioner/{PSEUDO.pseudonym('Practitioner', 'dr-jones')}"},
    ]


def test_an_organisation_named_by_its_ods_code_alone_is_kept() -> None:
    """ODS codes are public: an organisation named by one alone (as the care
    home mapping names a home) still says which one it is."""
    output = pseudonymised(
        {
            "resourceType": "EpisodeOfCare",
            "status": "active",
            "managingOrganization": {
                "identifier": {"system": ODS_SYSTEM, "value": "VM4X2"},
                "display": "Rosemary Court",
            },
        }
    )
    assert output["managingOrganization"] == {
        "identifier": {"system": ODS_SYSTEM, "value": "VM4X2"}
    }


def test_absolute_and_urn_references_to_pseudonymised_types_are_removed() -> None:
    output = pseudonymised(
        _observation(
            subject={"reference": "https://other.example/fhir/Patient/p1"},
            performer=[
                {"reference": "urn:uuid:7c4b0d50-0a52-4e4c-8e55-77f1b8f2b3a1"},
                {"reference": "Practitioner?identifier=https://fhir.hl7.org.uk/Id/gmc|C1234567"},
                {"reference": "https://ods.example/fhir/Organization/RKE/_history/2"},
            ],
            hasMember=[{"reference": "#missing"}],
        )
    )
    assert "subject" not in output
    assert "hasMember" not in output
    assert output["performer"] == [{"reference": "https://ods.example/fhir/Organization/RKE"}]


def test_a_person_named_by_nhs_number_is_named_by_their_pseudonym() -> None:
    by_number = _observation(subject={"identifier": NHS, "display": "Amara OKAFOR"})
    assert pseudonymised(by_number, "p1")["subject"] == {
        "reference": f"Patient/{PSEUDO.pseudonym('Patient', 'p1')}"
    }
    assert "subject" not in pseudonymised(by_number, None)


def test_the_person_named_elsewhere_by_the_same_identifier_is_the_person() -> None:
    """A Patient named by the same NHS number as the record's person element
    is the person; one named by another number, or a local identifier, is
    someone else, and removed."""
    output = pseudonymised(
        _observation(
            subject={"identifier": NHS},
            performer=[
                {"type": "Patient", "identifier": NHS},
                {"type": "Patient", "identifier": {**NHS, "value": "9990000026"}},
                {"type": "RelatedPerson", "identifier": {"system": "urn:x", "value": "R1"}},
            ],
        ),
        "p1",
    )
    person = {"reference": f"Patient/{PSEUDO.pseudonym('Patient', 'p1')}"}
    assert output["subject"] == person
    assert output["performer"] == [{**person, "type": "Patient"}]


def test_a_provenance_keeps_its_agents_pseudonymised_and_drops_the_anonymous() -> None:
    output = pseudonymised(
        {
            "resourceType": "Provenance",
            "id": "pv",
            "target": [{"reference": "Observation/o1/_history/1"}],
            "recorded": "2024-03-12T08:26:13Z",
            "agent": [
                {
                    "who": {"reference": "Practitioner/nurse", "display": "Tom WHITFIELD"},
                    "onBehalfOf": {"reference": "Organization/RKE", "display": "Whittington"},
                },
                {"who": {"identifier": {"system": "urn:dev", "value": "MONITOR-07"}}},
            ],
            "entity": [{"role": "source", "what": {"display": "Bay 7 monitor"}}],
            "signature": [{"type": [{"code": "1.2"}], "when": "2024-03-12T08:26:13Z"}],
        }
    )
    assert output["target"] == [
        {"reference": f"Observation/{PSEUDO.pseudonym('Observation', 'o1')}"}
    ]
    assert output["agent"] == [
        {
            "who": {"reference": f"Practitioner/{PSEUDO.pseudonym('Practitioner', 'nurse')}"},
            "onBehalfOf": {"reference": "Organization/RKE"},
        }
    ]
    assert "entity" not in output and "signature" not in output


# Patients.


def _patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", **elements}


@pytest.mark.parametrize(
    ("postcode", "district"),
    [
        ("SW1A 1AA", "SW1A"),
        ("nw1 2db", "NW1"),
        ("SW1A1AA", "SW1A"),
        ("W1 1AA", "W1"),
        ("W11AA", "W1"),
        ("EC1A 1BB", "EC1A"),
        ("E8 9ZZ", "E8"),
        ("  m1   1ae ", "M1"),
        ("SW1A", "SW1A"),
        ("ZZ9 5QT", "ZZ9"),
        ("B33 8TH", "B33"),
        ("CR2 6XH", "CR2"),
        ("DN55 1PT", "DN55"),
        ("90210", None),
        ("not known", None),
        ("", None),
        ("SW1A 1A", None),
    ],
)
def test_a_postcode_becomes_its_district(postcode: str, district: str | None) -> None:
    assert postcode_district(postcode) == district


def test_an_address_keeps_only_its_district_borough_and_country() -> None:
    output = pseudonymised(
        _patient(
            address=[
                {
                    "use": "home",
                    "line": ["Flat 4", "27 Junction Road"],
                    "city": "London",
                    "district": "Islington",
                    "postalCode": "N19 5QT",
                    "country": "GB",
                    "period": {"start": "2015-09-01"},
                    "text": "Flat 4, 27 Junction Road, London N19 5QT",
                },
                {"use": "old", "line": ["1 High Street"], "postalCode": "not a postcode"},
                {"use": "temp", "postalCode": "n19 5qt", "district": "Islington", "country": "GB"},
            ]
        )
    )
    assert output["address"] == [
        {"use": "home", "district": "Islington", "country": "GB", "postalCode": "N19"},
        {"use": "temp", "district": "Islington", "country": "GB", "postalCode": "N19"},
    ]


def test_a_patient_keeps_its_pseudonym_as_its_only_identifier() -> None:
    output = pseudonymised(
        _patient(
            identifier=[NHS, {"system": "urn:local", "value": "RKE4471902"}],
            name=[{"family": "Okafor", "given": ["Amara"]}],
            telecom=[{"system": "phone", "value": "020 7946 0321"}],
            photo=[{"contentType": "image/jpeg", "data": "AAAA"}],
            contact=[{"name": {"family": "Okafor"}}],
            link=[{"other": {"reference": "RelatedPerson/r1"}, "type": "seealso"}],
            gender="female",
            birthDate="1986-07-14",
            _birthDate={
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueDateTime": "1986-07-14T04:20:00+01:00",
                    }
                ]
            },
            deceasedDateTime="2024-02-29T13:00:00Z",
            multipleBirthInteger=2,
            generalPractitioner=[{"reference": "Organization/F83004", "display": "Archway"}],
        )
    )
    pseudonym = PSEUDO.pseudonym("Patient", "p1")
    assert output == {
        "resourceType": "Patient",
        "id": pseudonym,
        "meta": {"security": [PSEUDED]},
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}],
        "gender": "female",
        "birthDate": "1986-07",
        "deceasedDateTime": "2024-02",
        "multipleBirthInteger": 2,
        "generalPractitioner": [{"reference": "Organization/F83004"}],
    }


def test_dates_other_than_birth_and_death_are_kept_exactly() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "IMP"},
        "period": {"start": "2026-01-05T10:12:00Z", "end": "2026-01-09T16:40:00Z"},
    }
    assert pseudonymised(encounter)["period"] == encounter["period"]


def test_relatives_and_staff_are_people_too() -> None:
    for res_type in ("RelatedPerson", "Practitioner"):
        output = pseudonymised(
            {
                "resourceType": res_type,
                "id": "x",
                "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C12"}],
                "name": [{"family": "Okafor"}],
                "birthDate": "1960-03-02",
                "address": [{"line": ["2 Low Road"], "postalCode": "E8 1AA"}],
                "qualification": [{"code": {"coding": [{"code": "MB"}]}, "identifier": [NHS]}],
            }
        )
        assert output["id"] == PSEUDO.pseudonym(res_type, "x")
        assert "identifier" not in output and "name" not in output
        assert output["birthDate"] == "1960-03"
        assert output["address"] == [{"postalCode": "E8"}]


# Free text, attachments, extensions, contained resources.


def test_free_text_goes_wherever_it_is() -> None:
    output = pseudonymised(
        _observation(
            text={"status": "generated", "div": "<div>Amara</div>"},
            code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Pulse"},
            valueString="Told me her neighbour at number 4 hits her",
            note=[{"text": "Lives alone", "authorString": "Dr Jones"}],
            component=[
                {"code": {"coding": [{"code": "a"}]}, "valueString": "in her words"},
                {"code": {"text": "How are you?"}, "valueInteger": 3},
            ],
            interpretation=[{"coding": [{"system": "urn:local", "code": "x", "display": "Mrs X"}]}],
        )
    )
    assert output["code"] == {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    assert output["component"] == [
        {"code": {"coding": [{"code": "a"}]}},
        {"code": MASKED, "valueInteger": 3},  # the question was its words alone
    ]
    assert output["interpretation"] == [{"coding": [{"system": "urn:local", "code": "x"}]}]
    assert not {"text", "valueString", "note"} & output.keys()


def test_dosage_words_and_attachments_go() -> None:
    output = pseudonymised(
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "the blue ones"},
            "subject": {"reference": "Patient/p1"},
            "dosage": [{"text": "One at night", "patientInstruction": "Ask Bob", "sequence": 1}],
        }
    )
    assert output["dosage"] == [{"sequence": 1}]
    assert output["medicationCodeableConcept"] == MASKED  # required: there, but masked
    document = pseudonymised(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "description": "Letter to Mrs Okafor",
            "masterIdentifier": {"system": "urn:x", "value": "DOC-1"},
            "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}}],
        }
    )
    assert document["content"] == [{"attachment": {"contentType": "application/pdf"}}]
    assert not {"description", "masterIdentifier"} & document.keys()
    report = pseudonymised(
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"coding": [{"code": "x"}]},
            "conclusion": "Mrs Okafor's scan",
            "presentedForm": [{"contentType": "application/pdf", "data": "JVBERi0="}],
        }
    )
    assert not {"conclusion", "presentedForm"} & report.keys()


def test_extensions_follow_the_same_rules_and_empty_ones_go() -> None:
    output = pseudonymised(
        _patient(
            extension=[
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                    "valueString": "Eze",
                },
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                    "valueAddress": {"city": "Lagos", "country": "NG"},
                },
                {
                    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus",
                    "extension": [
                        {"url": "deathNotificationStatus", "valueCodeableConcept": {"text": "x"}},
                        {"url": "systemEffectiveDate", "valueDateTime": "2024-02-29T13:00:00Z"},
                    ],
                },
                {"url": "urn:x:nok", "valueReference": {"reference": "RelatedPerson/r1"}},
            ]
        )
    )
    assert output["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
            "valueAddress": {"country": "NG"},
        },
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus",
            "extension": [{"url": "systemEffectiveDate", "valueDateTime": "2024-02"}],
        },
        {
            "url": "urn:x:nok",
            "valueReference": {
                "reference": f"RelatedPerson/{PSEUDO.pseudonym('RelatedPerson', 'r1')}"
            },
        },
    ]


def test_contained_resources_are_pseudonymised_and_renamed() -> None:
    output = pseudonymised(
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "med-for-nhs-9990000018",
                    "code": {"text": "x"},
                },
                {
                    "resourceType": "Practitioner",
                    "id": "gp",
                    "name": [{"family": "Jones"}],
                    "identifier": [{"system": "urn:x", "value": "G1"}],
                },
            ],
            "medicationReference": {"reference": "#med-for-nhs-9990000018"},
            "subject": {"reference": "Patient/p1"},
            "requester": {"reference": "#gp", "display": "Dr Jones"},
        },
        "p1",
    )
    assert [c["id"] for c in output["contained"]] == ["c0", "c1"]
    assert output["medicationReference"] == {"reference": "#c0"}
    assert output["requester"] == {"reference": "#c1"}
    assert "name" not in output["contained"][1] and "identifier" not in output["contained"][1]
    assert "9990000018" not in json.dumps(output)


def test_meta_keeps_versions_profiles_and_labels_not_its_source() -> None:
    output = pseudonymised(
        _observation(
            meta={
                "versionId": "3",
                "lastUpdated": "2026-01-01T00:00:00Z",
                "source": "urn:ods:RKE",
                "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"],
                "security": [{**PSEUDED}, {"system": "urn:x", "code": "R", "display": "x"}],
                "tag": [{"system": "urn:x", "code": "t"}],
            }
        )
    )
    assert output["meta"] == {
        "versionId": "3",
        "lastUpdated": "2026-01-01T00:00:00Z",
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"],
        "security": [PSEUDED, {"system": "urn:x", "code": "R"}],
        "tag": [{"system": "urn:x", "code": "t"}],
    }


# Every string an R4 resource of a served type can hold, as an attacker would
# fill it.

_TEXT_TYPES = frozenset({"string", "markdown", "uri", "url", "canonical", "base64Binary"})
_NOT_PROBED = frozenset({"extension", "modifierExtension", "id", "contained", "meta", "text"})
# What may leave of a resource filled with a different string in every
# element that holds one (paths without their type): Organization's and
# Location's public names and ODS codes, what is left of an address,
# device models, batch numbers, policies and protocols (public documents
# by URL), a Subscription's criteria; besides, everywhere, the system,
# version and unit of codings and quantities.
PROBE_SURVIVORS = {
    "Organization.name",
    "Organization.alias",
    "Organization.identifier.value",
    "Location.name",
    "Location.alias",
    "Location.identifier.value",
    "address.district",
    "address.country",
    "input.valueAddress.district",
    "input.valueAddress.country",
    "output.valueAddress.district",
    "output.valueAddress.country",
    "Device.manufacturer",
    "Device.modelNumber",
    "Device.partNumber",
    "Device.version.value",
    "Immunization.lotNumber",
    "Medication.batch.lotNumber",
    "Immunization.education.documentType",
    "Immunization.education.reference",
    "instantiatesCanonical",
    "activity.detail.instantiatesCanonical",
    "MedicationAdministration.instantiates",
    "input.valueCanonical",
    "output.valueCanonical",
    "Consent.policy.uri",
    "Consent.policy.authority",
    "Provenance.policy",
    "AuditEvent.agent.policy",
    "Subscription.criteria",
}
_GENERIC = re.compile(r".*\.(system|version|unit)")


def _probe(res_type: str, canaries: dict[str, str]) -> dict[str, Any]:
    """A ``res_type`` with every string element of its definition (and of
    its data types, five deep; every type of each choice) filled with a
    string of its own, recorded in ``canaries``."""
    from conformance.definitions import structures

    types = structures()["types"]

    def children(type_name: str, path: str) -> list[dict[str, Any]]:
        depth = path.count(".") + 1
        return [
            e
            for e in types[type_name]["elements"]
            if e["path"].startswith(path + ".") and e["path"].count(".") == depth
        ]

    def fill(type_name: str, path: str, where: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for element in children(type_name, path):
            name = element["path"].rsplit(".", 1)[1]
            if name in _NOT_PROBED or "contentReference" in element:
                continue
            codes = [t["code"] for t in element.get("type", [])] or ["BackboneElement"]
            if name.endswith("[x]"):
                variants = [(name[:-3] + code[0].upper() + code[1:], code) for code in codes]
            else:
                variants = [(name, codes[0])]
            for key, code in variants:
                here = f"{where}.{key}"
                value: Any = None
                if code in _TEXT_TYPES:
                    value = f"CANARY{len(canaries)}X"
                    canaries[value] = here
                elif depth > 4:
                    continue
                elif code in ("BackboneElement", "Element"):
                    value = fill(type_name, element["path"], here, depth + 1)
                elif (
                    code in types
                    and types[code]["kind"] == "complex-type"
                    and code
                    not in (
                        "Extension",
                        "Meta",
                        "Narrative",
                    )
                ):
                    value = fill(code, code, here, depth + 1)
                if value:
                    out[key] = [value] if element.get("max") == "*" else value
        return out

    return {"resourceType": res_type, "id": "x1", **fill(res_type, res_type, res_type, 0)}


@pytest.mark.parametrize("res_type", sorted(RESOURCES))
def test_no_string_leaves_but_the_public_ones(res_type: str) -> None:
    """A resource with every string element its R4 definition allows filled
    in keeps only the strings ``PROBE_SURVIVORS`` lists, and stays valid
    JSON FHIR (nothing empty): a new element that can hold words, or a rule
    that stops removing one, fails here."""
    canaries: dict[str, str] = {}
    probe = _probe(res_type, canaries)
    assert len(canaries) > 5
    text = json.dumps(pseudonymised(probe, "p1"))
    left = {canaries[c] for c in re.findall(r"CANARY\d+X", text)}
    unexpected = sorted(
        path
        for path in left
        if not _GENERIC.fullmatch(path)
        and path not in PROBE_SURVIVORS
        and path.split(".", 1)[1] not in PROBE_SURVIVORS
    )
    assert unexpected == []


# The rules of some types.


def test_words_that_were_all_a_required_code_said_are_masked() -> None:
    flag = pseudonymised(
        {
            "resourceType": "Flag",
            "status": "active",
            "code": {"text": "DoLS authorisation; supervisory body London Borough of Sutton"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    assert flag["code"] == MASKED
    allergy = pseudonymised(
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": "Patient/p1"},
            "reaction": [{"manifestation": [{"text": "hives after Mrs X's cake"}]}],
        }
    )
    assert allergy["reaction"] == [{"manifestation": [MASKED]}]


def test_a_conditional_reference_to_the_person_is_to_their_pseudonym() -> None:
    carer = {
        "resourceType": "RelatedPerson",
        "id": "r1",
        "patient": {"reference": "Patient?identifier=urn:london-care-gateway:local-id:713|LA100"},
    }
    assert pseudonymised(carer, "p1")["patient"] == {
        "reference": f"Patient/{PSEUDO.pseudonym('Patient', 'p1')}"
    }
    assert "patient" not in pseudonymised(carer, None)


def test_a_composition_keeps_a_coded_title_and_sections_with_entries() -> None:
    output = pseudonymised(
        {
            "resourceType": "Composition",
            "status": "final",
            "type": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "373942005",
                        "display": "Discharge summary",
                    }
                ]
            },
            "date": "2026-01-09",
            "author": [{"reference": "Organization/RKE"}],
            "title": "Discharge summary for Amara Okafor",
            "section": [
                {
                    "title": "Allergies",
                    "text": {"status": "generated", "div": "<div>x</div>"},
                    "entry": [{"reference": "AllergyIntolerance/a1"}],
                },
                {"title": "Social history", "text": {"status": "generated", "div": "<div>x</div>"}},
            ],
        }
    )
    assert output["title"] == "Discharge summary"
    assert output["section"] == [
        {
            "entry": [
                {"reference": f"AllergyIntolerance/{PSEUDO.pseudonym('AllergyIntolerance', 'a1')}"}
            ]
        }
    ]


def test_a_patients_home_location_loses_its_name_and_every_location_its_position() -> None:
    output = pseudonymised(
        {
            "resourceType": "Location",
            "id": "home-1",
            "name": "Mr Smith's flat",
            "alias": ["Flat 4"],
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "PTRES",
                        }
                    ]
                }
            ],
            "position": {"longitude": -0.13, "latitude": 51.56},
            "address": {"line": ["Flat 4"], "postalCode": "N19 5QT"},
        }
    )
    assert output["id"] == "home-1"
    assert not {"name", "alias", "position", "address"} & output.keys()


def test_what_singles_out_a_device_an_audit_entry_or_a_subscription_goes() -> None:
    device = pseudonymised(
        {
            "resourceType": "Device",
            "serialNumber": "PM-123456",
            "lotNumber": "L1",
            "deviceName": [{"name": "Mrs X's pacemaker", "type": "user-friendly-name"}],
            "udiCarrier": [{"deviceIdentifier": "0123"}],
            "modelNumber": "M2",
            "patient": {"reference": "Patient/p1"},
        }
    )
    assert device.keys() == {"resourceType", "meta", "modelNumber", "patient"}
    audit = pseudonymised(
        {
            "resourceType": "AuditEvent",
            "recorded": "2026-01-01T00:00:00Z",
            "outcomeDesc": "read Amara's record",
            "agent": [
                {
                    "name": "Dr Jones",
                    "altId": "jones1",
                    "requestor": True,
                    "network": {"address": "10.0.0.7", "type": "2"},
                }
            ],
            "entity": [
                {
                    "query": "aWRlbnRpZmllcj05OTkwMDAwMDE4",
                    "name": "Okafor",
                    "detail": [{"type": "q", "valueString": "9990000018"}],
                }
            ],
        }
    )
    assert audit["agent"] == [{"requestor": True}]
    assert "entity" not in audit and "outcomeDesc" not in audit
    subscription = pseudonymised(
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "my residents",
            "criteria": "Encounter?class=IMP",
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://home.example/hook",
                "header": ["Authorization: Bearer secret"],
            },
        }
    )
    assert subscription["channel"] == {"type": "rest-hook"}
    assert "reason" not in subscription


def test_an_answers_date_goes_for_it_may_be_a_birth_date() -> None:
    output = pseudonymised(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "item": [
                {"linkId": "dob", "text": "Date of birth", "answer": [{"valueDate": "1986-07-14"}]},
                {"linkId": "smoker", "answer": [{"valueBoolean": False}]},
            ],
        }
    )
    assert output["item"] == [
        {"linkId": "dob"},
        {"linkId": "smoker", "answer": [{"valueBoolean": False}]},
    ]
