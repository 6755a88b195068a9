"""What a consent decision is made from, and what it answers.

Plain values only: the engine knows nothing of HTTP, databases or the token
format. The gateway's access layer gathers these facts and asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

Coding = tuple[str | None, str]  # (system, code)

# HL7 v3 codes (http://terminology.hl7.org/CodeSystem/v3-ActCode and
# v3-Confidentiality) the rules name.
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESTRICTED_LABELS = frozenset({"PSY", "ETH", "SEX", "SDV"})
LEGALLY_RESTRICTED = "R"
# Purposes of secondary use (v3 ActReason): population health, planning,
# research. Not direct care: organisations of kind analytics ask for them,
# and their own rules decide (see consent.engine).
SECONDARY_USE = frozenset({"POPHLTH", "HOPERAT", "HRESCH"})
# A type 1 opt-out: the person's dissent, recorded at their GP practice,
# from secondary use of their GP data; and its withdrawal (SNOMED CT).
SNOMED = "http://snomed.info/sct"
TYPE_1_OPT_OUT: Coding = (SNOMED, "827241000000103")
TYPE_1_WITHDRAWN: Coding = (SNOMED, "827261000000102")
# Why a person is left out of secondary use (``Person.opted_out``).
TYPE_1 = "type-1-opt-out"
NATIONAL = "national-data-opt-out"

# Whose record a resource says it is (``ResourceFacts.whose``).
PERSON = "person"  # a person's: it names them, by id or by identifier
NO_PERSON = "no-person"  # a kind of record always a person's (a clinical one), naming none
DIRECTORY = "directory"  # no one's: an Organization, a Medication, a Location...


@dataclass(frozen=True)
class Requester:
    """Who asks: their organisation (ODS code), its kind, and the purpose;
    the client system asking for it, and the break-glass reason given with
    ETREAT. The one requester type: the rules read the first three, the
    audit entry all of them."""

    org_ods: str
    kind: str  # gp-practice, council, care-home, hospital, ambulance, auditor, analytics
    purpose: str  # TREAT, ETREAT, HCOMPL, or one of SECONDARY_USE
    client_id: str = ""
    client_name: str = ""
    org_name: str = ""
    reason: str | None = None


# Between an organisation's ODS code and the rest of an id it assigns itself.
ID_SEPARATOR = "-"


@dataclass(frozen=True)
class ResourceFacts:
    """What the rules look at in one candidate resource."""

    res_type: str
    res_id: str
    labels: frozenset[Coding] = frozenset()  # meta.security
    codes: frozenset[Coding] = frozenset()  # the codings of its main code(s)
    # The resource's own clinical date as an ISO range (low inclusive, high
    # exclusive); None when it has none.
    clinical_low: str | None = None
    clinical_high: str | None = None
    author_ods: str | None = None  # from meta.source urn:ods:<code>
    # A privacy Consent (scope patient-privacy): the policy sharing follows,
    # not part of the record. An advance decision (scope adr) is the record.
    sharing_policy: bool = False
    # Whose record it says it is: PERSON, NO_PERSON or DIRECTORY. Decided
    # with no person on file (``decide``'s ``person`` is ``None``), only a
    # DIRECTORY resource is shared; the others are their author's alone.
    whose: str = DIRECTORY

    @property
    def restricted(self) -> frozenset[str]:
        """The restricted-data labels it carries (PSY, ETH, SEX, SDV)."""
        return frozenset(
            code for system, code in self.labels if system == ACT_CODE and code in RESTRICTED_LABELS
        )

    @property
    def legally_restricted(self) -> bool:
        return (CONFIDENTIALITY, LEGALLY_RESTRICTED) in self.labels

    def authored_by(self, org_ods: str) -> bool:
        """Whether ``org_ods`` authored it: it wrote this version
        (``meta.source``), or the id is one of its own (``<ODS code>-...``,
        the ids an organisation may assign itself when it creates with
        PUT: no one else may create there, so it made the record)."""
        return bool(org_ods) and (
            self.author_ods == org_ods or self.res_id.startswith(org_ods + ID_SEPARATOR)
        )


@dataclass(frozen=True)
class Provision:
    """A Consent.provision, reduced to what matching needs. An empty
    criterion matches everything."""

    type: str  # permit | deny
    path: str  # provision path within its Consent: "provision", "provision.provision[1]"
    period: tuple[str | None, str | None] = (None, None)
    actors: frozenset[str] = frozenset()  # organisations, by ODS code
    purposes: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()  # resource types
    labels: frozenset[Coding] = frozenset()
    codes: frozenset[Coding] = frozenset()
    data_period: tuple[str | None, str | None] = (None, None)
    data: frozenset[str] = frozenset()  # specific resources, "Type/id"
    provisions: tuple[Provision, ...] = ()


@dataclass(frozen=True)
class ConsentPolicy:
    """An interpretable FHIR Consent of the person (scope patient-privacy)."""

    consent_id: str
    status: str
    period: tuple[str | None, str | None]
    provision: Provision


@dataclass(frozen=True)
class Person:
    """What the data says about the person the resource belongs to."""

    patient_id: str
    relationships: frozenset[str] = frozenset()  # ODS codes with a care relationship
    consents: tuple[ConsentPolicy, ...] = ()
    # Consents that could not be interpreted: the person's data is withheld
    # from everyone but its authors until they are fixed.
    uninterpretable: tuple[str, ...] = ()
    # Why the person is left out of secondary use (TYPE_1 or NATIONAL), or
    # ``None`` if they are not. Direct care never reads it.
    opted_out: str | None = None

    @cached_property
    def reads_content(self) -> bool:
        """Whether any provision of the person's Consents matches on a
        resource's codes or clinical date; when none does, the access layer
        need not extract them (the costliest facts) to decide."""

        def reads(provision: Provision) -> bool:
            return (
                bool(provision.codes)
                or provision.data_period != (None, None)
                or any(reads(child) for child in provision.provisions)
            )

        return any(reads(consent.provision) for consent in self.consents)


@dataclass(frozen=True)
class Decision:
    permit: bool
    rule: str  # which rule decided (see consent.engine)
    consent_id: str | None = None
    provision: str | None = None
    detail: str = field(default="", compare=False)

    def explain(self) -> str:
        where = f" (Consent/{self.consent_id} {self.provision})" if self.consent_id else ""
        return f"{'permit' if self.permit else 'deny'}: {self.rule}{where}" + (
            f": {self.detail}" if self.detail else ""
        )
