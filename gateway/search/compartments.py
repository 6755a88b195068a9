"""The Patient compartment: which references put a resource in a patient's
compartment, for ``GET [base]/Patient/[id]/[type]``.

From the FHIR R4 CompartmentDefinition ``patient``
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html), for the types
in scope; a type with no parameters here is not in the compartment.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.search.parameters import SearchParameter, parameter

PATIENT_COMPARTMENT: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("patient", "recorder", "asserter"),
    "AuditEvent": ("patient",),
    "CarePlan": ("patient", "performer"),
    "CareTeam": ("patient", "participant"),
    "Composition": ("subject", "author", "attester"),
    "Condition": ("patient", "asserter"),
    "Consent": ("patient",),
    "Device": ("patient",),
    "DiagnosticReport": ("subject",),
    "DocumentReference": ("subject", "author"),
    "Encounter": ("patient",),
    "EpisodeOfCare": ("patient",),
    "Flag": ("patient",),
    "Immunization": ("patient",),
    "List": ("subject", "source"),
    "MedicationAdministration": ("patient", "performer", "subject"),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "Observation": ("subject", "performer"),
    "Patient": ("link",),
    "Procedure": ("patient", "performer"),
    "Provenance": ("patient",),
    "RelatedPerson": ("patient",),
    "ServiceRequest": ("subject", "performer"),
    # Not in R4's patient compartment, but a social care assessment or review
    # is the person's record: it is theirs for consent and $everything.
    "Task": ("patient",),
    # Group (R4: ``member``) is left out on purpose: a cohort is its
    # author's alone, not part of each member's record
    # (``gateway.access.facts.AUTHORS_OWN_TYPES``).
}


def compartment_parameters(compartment: str, res_type: str) -> tuple[str, ...]:
    if compartment != "Patient":
        return ()
    return PATIENT_COMPARTMENT.get(res_type, ())


def compartment_members(
    compartment: str, types: Iterable[str]
) -> tuple[tuple[str, SearchParameter], ...]:
    """The (type, reference parameter) pairs that put a resource of one of
    ``types`` in a ``compartment``."""
    pairs = []
    for res_type in types:
        for code in compartment_parameters(compartment, res_type):
            found = parameter(res_type, code)
            if found is not None:
                pairs.append((res_type, found))
    return tuple(pairs)
