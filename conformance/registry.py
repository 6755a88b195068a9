"""What the gateway implements: the single registry that the HTTP routes and the
CapabilityStatement are both built from, so the server cannot advertise an
interaction it does not route, nor route one it does not advertise.

https://hl7.org/fhir/R4/capabilitystatement.html#CapabilityStatement.rest.resource.interaction
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TypeInteraction(StrEnum):
    """FHIR R4 TypeRestfulInteraction codes the gateway may support per type."""

    READ = "read"
    VREAD = "vread"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    HISTORY_INSTANCE = "history-instance"
    HISTORY_TYPE = "history-type"
    CREATE = "create"
    SEARCH_TYPE = "search-type"


class SystemInteraction(StrEnum):
    """FHIR R4 SystemRestfulInteraction codes."""

    TRANSACTION = "transaction"
    BATCH = "batch"
    HISTORY_SYSTEM = "history-system"
    SEARCH_SYSTEM = "search-system"


_ALL = frozenset(TypeInteraction)
_READ_ONLY = frozenset(
    {
        TypeInteraction.READ,
        TypeInteraction.VREAD,
        TypeInteraction.HISTORY_INSTANCE,
        TypeInteraction.HISTORY_TYPE,
        TypeInteraction.SEARCH_TYPE,
    }
)


@dataclass(frozen=True)
class ResourceSupport:
    """One resource type: what may be done with it and which UK Core profile
    it is shaped after (none where UK Core 2.0.1, the version the gateway
    checks, has none: Flag, DocumentReference, Task, Device, and the types
    UK Core never profiled, Subscription and Group among them)."""

    type: str
    interactions: frozenset[TypeInteraction]
    profile: str | None = None
    conditional_create: bool = True
    conditional_update: bool = True

    def supports(self, interaction: TypeInteraction) -> bool:
        return interaction in self.interactions


_UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"

# The resource types in scope. AuditEvent is written only by the gateway itself
# and is never created, changed or deleted through the API (PRODUCT.md, 5).
RESOURCES: dict[str, ResourceSupport] = {
    r.type: r
    for r in (
        ResourceSupport("Patient", _ALL, _UK_CORE + "Patient"),
        ResourceSupport("RelatedPerson", _ALL, _UK_CORE + "RelatedPerson"),
        ResourceSupport("Practitioner", _ALL, _UK_CORE + "Practitioner"),
        ResourceSupport("PractitionerRole", _ALL, _UK_CORE + "PractitionerRole"),
        ResourceSupport("Organization", _ALL, _UK_CORE + "Organization"),
        ResourceSupport("Location", _ALL, _UK_CORE + "Location"),
        ResourceSupport("Encounter", _ALL, _UK_CORE + "Encounter"),
        ResourceSupport("EpisodeOfCare", _ALL),
        ResourceSupport("Condition", _ALL, _UK_CORE + "Condition"),
        ResourceSupport("AllergyIntolerance", _ALL, _UK_CORE + "AllergyIntolerance"),
        ResourceSupport("Medication", _ALL, _UK_CORE + "Medication"),
        ResourceSupport("MedicationStatement", _ALL, _UK_CORE + "MedicationStatement"),
        ResourceSupport("MedicationRequest", _ALL, _UK_CORE + "MedicationRequest"),
        ResourceSupport("Immunization", _ALL, _UK_CORE + "Immunization"),
        ResourceSupport("Observation", _ALL, _UK_CORE + "Observation"),
        ResourceSupport("Procedure", _ALL, _UK_CORE + "Procedure"),
        ResourceSupport("DiagnosticReport", _ALL, _UK_CORE + "DiagnosticReport"),
        ResourceSupport("CarePlan", _ALL),
        ResourceSupport("CareTeam", _ALL),
        ResourceSupport("ServiceRequest", _ALL, _UK_CORE + "ServiceRequest"),
        ResourceSupport("Flag", _ALL),
        ResourceSupport("DocumentReference", _ALL),
        ResourceSupport("Consent", _ALL),
        ResourceSupport("Provenance", _ALL),
        ResourceSupport(
            "AuditEvent",
            _READ_ONLY,
            conditional_create=False,
            conditional_update=False,
        ),
        ResourceSupport("Composition", _ALL, _UK_CORE + "Composition"),
        # For the social care and care-home mappings: assessments and reviews
        # (Task), doses given (MedicationAdministration), aids (Device) and
        # lists such as a resident's belongings (List).
        ResourceSupport("Task", _ALL),
        ResourceSupport("MedicationAdministration", _ALL, _UK_CORE + "MedicationAdministration"),
        ResourceSupport("Device", _ALL),
        ResourceSupport("List", _ALL, _UK_CORE + "List"),
        # A client's standing request to be told of care-pathway events
        # (issue 27), shaped after the Subscriptions Backport IG's
        # backport-subscription profile, which UK Core does not profile. It
        # is its author organisation's alone (``gateway.access.facts``).
        ResourceSupport("Subscription", _ALL),
        # A cohort (issue 28): the people a bulk export is run for, at
        # Group/[id]/$export. UK Core does not profile Group. It names
        # people but is no one's record: its author organisation's alone
        # (``gateway.access.facts``).
        ResourceSupport("Group", _ALL),
    )
}

SYSTEM_INTERACTIONS: frozenset[SystemInteraction] = frozenset(
    {
        SystemInteraction.TRANSACTION,
        SystemInteraction.BATCH,
        SystemInteraction.HISTORY_SYSTEM,
        SystemInteraction.SEARCH_SYSTEM,
    }
)


@dataclass(frozen=True)
class Operation:
    """An operation the routes serve: on the resource types named, or on the
    whole system when none are."""

    name: str
    definition: str  # the OperationDefinition's canonical URL
    documentation: str = ""
    types: tuple[str, ...] = ()


_WRITABLE = tuple(r.type for r in RESOURCES.values() if TypeInteraction.CREATE in r.interactions)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "everything",
        "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        "Everything in the person's record the requester may see, paged.",
        ("Patient",),
    ),
    Operation(
        "summary",
        "http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
        "The person's summary as a signed FHIR document (IPS-shaped), of what the requester "
        "may see; also Patient/$summary?identifier=<NHS number>.",
        ("Patient",),
    ),
    Operation(
        "red-bag",
        "urn:london-care-gateway:OperationDefinition:red-bag",
        "A care-home resident's hospital transfer record (the Red Bag) as a signed FHIR "
        "document; also Patient/$red-bag?identifier=<NHS number>.",
        ("Patient",),
    ),
    Operation(
        "access-report",
        "urn:london-care-gateway:OperationDefinition:access-report",
        "Who accessed the person's record, when and why, from the audit log: for auditors "
        "(purpose HCOMPL) and the person's registered practice.",
        ("Patient",),
    ),
    Operation(
        "validate",
        "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        "Whether a create, update (POST [type]/[id]/$validate) or delete (mode=delete) "
        "would be accepted, checked as the write itself would be and rolled back.",
        _WRITABLE,
    ),
    Operation(
        "access-check",
        "urn:london-care-gateway:OperationDefinition:access-check",
        "Compliance and audit (purpose HCOMPL) only: given a person (patient), an "
        "organisation (organization, its ODS code), a purpose and optionally a resource, "
        "what that organisation would see of the person's record and which rule or "
        "Consent provision decided, as counts and decisions, never the data.",
    ),
    Operation(
        "ingest",
        "urn:london-care-gateway:OperationDefinition:ingest",
        "A registered source pushes its own records in the format it keeps them (?format= "
        "hl7v2, cld, gp-connect or care-home; or by media type): each is mapped to FHIR and "
        "loaded as the client's organisation, answered per record (loaded, unchanged or "
        "rejected with its position and reason) in a Parameters resource.",
    ),
    Operation(
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
        "Bulk Data Access v2.0 export (Prefer: respond-async; _type, _since, _typeFilter, "
        "_elements, and project naming the pseudonym key), for secondary use only: a client "
        "of an analytics organisation with purpose POPHLTH, HOPERAT or HRESCH. Every person is "
        "decided by the consent engine's secondary-use rules (opt-outs, restricted data), and "
        "every file is pseudonymised.",
    ),
    Operation(
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
        "Bulk Data Access v2.0 export of the Patient compartment of every person (GET "
        "Patient/$export), as the system-level export decides and pseudonymises it.",
        ("Patient",),
    ),
    Operation(
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
        "Bulk Data Access v2.0 export of the Patient compartments of a Group's active members "
        "(GET Group/[id]/$export): an analytics organisation's own cohort, named by Patient "
        "or NHS number, decided and pseudonymised as the system-level export is.",
        ("Group",),
    ),
    Operation(
        "status",
        "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
        "Where a Subscription's delivery stands (its subscriber only): status, events "
        "numbered, the last error.",
        ("Subscription",),
    ),
    Operation(
        "events",
        "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events",
        "A Subscription's events by number (eventsSinceNumber, eventsUntilNumber, content), "
        "for its subscriber: the pull channel, and recovery of missed notifications.",
        ("Subscription",),
    ),
)


def resource_support(res_type: str) -> ResourceSupport | None:
    return RESOURCES.get(res_type)
