"""What a document brings in besides the person's records: the resources
of supporting types their stored JSON refers to."""

from __future__ import annotations

import json
from typing import Any

from gateway import fhirjson
from gateway.directory import Organisation
from gateway.documents.assemble import Gathered, build, referenced
from gateway.documents.sections import SUMMARY
from gateway.identifiers import ODS_SYSTEM
from gateway.store import StoredVersion
from mappings.ukcore import LIST_WARNING_URL


def _stored(resource: dict[str, Any]) -> StoredVersion:
    return StoredVersion(
        res_type=resource["resourceType"],
        res_id=resource["id"],
        version=1,
        last_updated="2026-11-25T09:00:00.000000Z",
        method="PUT",
        content=fhirjson.dumps(resource),
    )


def test_references_to_supporting_types_are_found_at_any_depth() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/m1", "display": "Amoxicillin"},
        "informationSource": {"reference": "PractitionerRole/pr1"},
        "contained": [
            {"resourceType": "Organization", "performer": [{"reference": "Location/l1"}]}
        ],
        "note": [{"authorReference": {"reference": "Practitioner/pa1"}}],
    }
    provenance = {
        "resourceType": "Provenance",
        "id": "pv1",
        "target": [{"reference": "MedicationStatement/ms1/_history/1"}],
        "agent": [{"who": {"reference": "Organization/o1"}}],
    }
    assert referenced([_stored(statement), _stored(provenance)]) == {
        "Medication/m1",
        "PractitionerRole/pr1",
        "Location/l1",
        "Practitioner/pa1",
        "Organization/o1",
    }


def test_text_that_mentions_a_reference_is_not_one() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "note": [{"text": 'copied from {"reference":"Organization/secret"}, "reference": "x"'}],
        "valueString": ',"reference":"Medication/m9"',
    }
    assert referenced([_stored(observation)]) == set()


def test_versioned_absolute_and_other_references_are_left_out() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "asserter": {"reference": "Practitioner/pa1/_history/3"},
        "recorder": {"reference": "https://example.org/fhir/Practitioner/pa2"},
        "encounter": {"reference": "Encounter/e1"},
        "evidence": [{"detail": [{"reference": "Organization/"}]}],
    }
    deleted = StoredVersion("Condition", "c2", 2, "2026-11-25T09:00:00.000000Z", "DELETE", None)
    assert referenced([_stored(condition), deleted]) == set()


def test_json_with_whitespace_reads_the_same() -> None:
    practitioner_role = {
        "resourceType": "PractitionerRole",
        "id": "pr1",
        "organization": {"reference": "Organization/o1"},
        "note": 'see , "reference" : "Location/l9"',
    }
    pretty = StoredVersion(
        "PractitionerRole",
        "pr1",
        1,
        "2026-11-25T09:00:00.000000Z",
        "PUT",
        json.dumps(practitioner_role, indent=2).encode(),
    )
    assert referenced([pretty]) == {"Organization/o1"}


def test_a_heading_warning_leaves_a_section_with_nothing_else_empty() -> None:
    """The GP warns that its allergies heading may be incomplete (a record
    in transit) and lists none: the section says both, and stays empty
    (IPS's emptyReason) rather than reading as if something were listed."""
    patient = {"resourceType": "Patient", "id": "p1"}
    heading = {
        "resourceType": "List",
        "id": "l1",
        "meta": {"source": "urn:ods:F84003"},
        "status": "current",
        "mode": "snapshot",
        "title": "Allergies and adverse reactions",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "886921000000105"}]},
        "subject": {"reference": "Patient/p1"},
        "extension": [
            {
                "url": LIST_WARNING_URL,
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListWarningCode",
                            "code": "data-in-transit",
                            "display": "Data in Transit",
                        }
                    ]
                },
            }
        ],
        "note": [{"text": "The previous practice's record has not all arrived."}],
    }
    gathered = Gathered({"List/l1": _stored(heading)}, {"List/l1": heading})
    document = build(SUMMARY, _stored(patient), gathered, base_url="http://gateway/fhir")
    sections = {s["title"]: s for s in document.bundle["entry"][0]["resource"]["section"]}
    allergies = sections["Allergies and intolerances"]
    assert allergies["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert "entry" not in allergies
    div = allergies["text"]["div"]
    assert "Allergies and adverse reactions may be incomplete" in div
    assert "Data in Transit" in div and "has not all arrived" in div
    assert allergies["emptyReason"]["text"] in div
    assert "may be incomplete" not in sections["Problems"]["text"]["div"]


def test_organisations_read_as_the_directorys_names_with_their_codes() -> None:
    """The registered practice, the council of an open episode and the
    From column name each organisation with its code beside it; a code
    the directory does not know is shown as such, and the page still builds."""
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "generalPractitioner": [
            {"identifier": {"system": ODS_SYSTEM, "value": "F99C02"}, "display": "ODS F99C02"}
        ],
    }
    episode = {
        "resourceType": "EpisodeOfCare",
        "id": "e1",
        "meta": {"source": "urn:ods:E09000007"},
        "status": "active",
        "patient": {"reference": "Patient/p1"},
        "managingOrganization": {"identifier": {"system": ODS_SYSTEM, "value": "E09000007"}},
        "period": {"start": "2026-01-05"},
    }
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "meta": {"source": "urn:ods:Q9Q99"},
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "Asthma"},
    }
    gathered = Gathered(
        {"EpisodeOfCare/e1": _stored(episode), "Condition/c1": _stored(condition)},
        {"EpisodeOfCare/e1": episode, "Condition/c1": condition},
    )
    known = {
        "F99C02": Organisation("F99C02", "Primrose Row Surgery", "GP practice"),
        "E09000007": Organisation("E09000007", "Camden Council", "Council"),
    }
    document = build(
        SUMMARY, _stored(patient), gathered, base_url="http://gateway/fhir", organisations=known
    )
    composition = document.bundle["entry"][0]["resource"]
    text = " ".join(
        [composition["text"]["div"], *(s["text"]["div"] for s in composition["section"])]
    )
    assert "Primrose Row Surgery (F99C02)" in text
    assert "Camden Council (E09000007)" in text
    assert "Q9Q99 (organisation not in the directory)" in text
    assert "ODS F99C02" not in text
    assert ">F99C02<" not in text and ">E09000007<" not in text


def test_a_fact_from_two_sources_is_one_row_and_both_stay_entries_linked_to_it() -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    weight = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "27113001"}]},
        "effectiveDateTime": "2026-07-31T09:00:00+01:00",
        "valueQuantity": {"value": 61.2, "unit": "kg", "code": "kg"},
    }
    practice = {**weight, "id": "w-gp", "meta": {"source": "urn:ods:F99C02"}}
    home = {
        **weight,
        "id": "w-home",
        "meta": {"source": "urn:ods:V9C02"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    }
    gathered = Gathered(
        {f"Observation/{o['id']}": _stored(o) for o in (practice, home)},
        {f"Observation/{o['id']}": o for o in (practice, home)},
    )
    known = {
        "F99C02": Organisation("F99C02", "Primrose Row Surgery", "GP practice"),
        "V9C02": Organisation("V9C02", "Canal Side Nursing Home", "Care home"),
    }
    document = build(
        SUMMARY, _stored(patient), gathered, base_url="http://gateway/fhir", organisations=known
    )
    composition = document.bundle["entry"][0]["resource"]
    [vitals] = [s for s in composition["section"] if s["title"] == "Vital signs"]
    div = vitals["text"]["div"]
    assert div.count("61.2 kg") == 1
    assert (
        "Primrose Row Surgery (F99C02)</span>, 31 Jul 2026; "
        '<span class="org">Canal Side Nursing Home (V9C02)</span>, 31 Jul 2026'
    ) in div
    # Nothing is merged in the data: both are entries, and each points at the row.
    assert [e["reference"] for e in vitals["entry"]] == ["Observation/w-gp", "Observation/w-home"]
    links = {e["extension"][0]["valueUrl"] for e in vitals["entry"]}
    assert links == {"#vital-signs-1"} and 'id="vital-signs-1"' in div
    in_bundle = {e["fullUrl"] for e in document.bundle["entry"]}
    assert {"http://gateway/fhir/Observation/w-gp", "http://gateway/fhir/Observation/w-home"} <= (
        in_bundle
    )


def test_the_registered_gp_and_the_practice_are_two_contacts_each_named_for_what_it_is() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "generalPractitioner": [
            {"identifier": {"system": ODS_SYSTEM, "value": "F99C02"}},
            {"reference": "Practitioner/gp1", "display": "Dr Aoife Delahunt"},
        ],
    }
    known = {"F99C02": Organisation("F99C02", "Primrose Row Surgery", "GP practice")}
    document = build(
        SUMMARY,
        _stored(patient),
        Gathered({}, {}),
        base_url="http://gateway/fhir",
        organisations=known,
    )
    composition = document.bundle["entry"][0]["resource"]
    [contacts] = [s for s in composition["section"] if s["title"] == "Care team and key contacts"]
    div = contacts["text"]["div"]
    assert 'Registered GP practice</td><td class="detail">Primrose Row Surgery (F99C02)' in div
    assert 'Registered GP</td><td class="detail">Dr Aoife Delahunt' in div
