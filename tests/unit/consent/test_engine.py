"""Every rule of the decision engine (PRODUCT.md section 4), one at a time."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from consent.engine import decide, deciding_provision
from consent.model import ACT_CODE, CONFIDENTIALITY, Person, Requester, ResourceFacts
from consent.parse import ODS_SYSTEM, Uninterpretable, parse_consent

NOW = "2026-06-01T12:00:00.000000Z"
GP, COUNCIL, HOME, HOSPITAL, AMBULANCE, AUDIT = "A81001", "E09000007", "VM123", "RKE", "RRU", "X26"
SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}


def requester(org: str, kind: str, purpose: str = "TREAT") -> Requester:
    return Requester(org_ods=org, kind=kind, purpose=purpose)


gp = requester(GP, "gp-practice")
council = requester(COUNCIL, "council")
hospital_treat = requester(HOSPITAL, "hospital")
hospital_emergency = requester(HOSPITAL, "hospital", "ETREAT")
ambulance = requester(AMBULANCE, "ambulance", "ETREAT")
auditor = requester(AUDIT, "auditor", "HCOMPL")


def resource(
    res_type: str = "Condition",
    *,
    labels: tuple[str, ...] = (),
    author: str | None = HOME,
    codes: tuple[tuple[str, str], ...] = (),
    date: str | None = "2024-01-01T00:00:00.000000Z",
    confidential: bool = False,
) -> ResourceFacts:
    found = {(ACT_CODE, label) for label in labels}
    if confidential:
        found.add((CONFIDENTIALITY, "R"))
    return ResourceFacts(
        res_type=res_type,
        res_id="r1",
        labels=frozenset(found),
        codes=frozenset(codes),
        clinical_low=date,
        clinical_high=date,
        author_ods=author,
    )


def actor(ods: str) -> dict[str, Any]:
    return {"reference": {"identifier": {"system": ODS_SYSTEM, "value": ods}}}


def consent(provision: dict[str, Any], consent_id: str = "c1", **extra: Any) -> Any:
    raw = {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": SCOPE,
        "provision": provision,
        **extra,
    }
    return parse_consent(raw, lambda ref: None)


def person(*consents: Any, relationships: tuple[str, ...] = (GP, COUNCIL, HOSPITAL)) -> Person:
    return Person("p1", frozenset(relationships), tuple(consents))


def rule(who: Requester, whom: Person, what: ResourceFacts) -> tuple[bool, str]:
    decision = decide(who, whom, what, NOW)
    return decision.permit, decision.rule


def test_implied_consent_with_a_relationship() -> None:
    assert rule(gp, person(), resource()) == (True, "implied-consent")


def test_no_relationship_no_access() -> None:
    assert rule(gp, person(relationships=(COUNCIL,)), resource()) == (False, "no-relationship")
    treat_ambulance = requester(AMBULANCE, "ambulance")
    assert rule(treat_ambulance, person(), resource()) == (False, "no-relationship")


def test_the_author_always_sees_its_own_records() -> None:
    dissent = consent({"type": "deny"})
    mine = resource(author=GP, labels=("PSY",))
    assert rule(gp, person(dissent, relationships=()), mine) == (True, "author")


def test_legally_restricted_records_never_leave_their_author() -> None:
    permit_all = consent({"type": "permit", "actor": [actor(GP)]})
    secret = resource(confidential=True)
    assert rule(gp, person(permit_all), secret) == (False, "legally-restricted")
    assert rule(hospital_emergency, person(), secret) == (False, "legally-restricted")
    assert rule(requester(HOME, "care-home"), person(), secret) == (True, "author")


@pytest.mark.parametrize("label", ["PSY", "ETH", "SEX", "SDV"])
def test_restricted_labels_need_an_explicit_permit(label: str) -> None:
    sensitive = resource(labels=(label,))
    assert rule(gp, person(), sensitive) == (False, "restricted-label")
    permit = consent(
        {
            "type": "deny",
            "provision": [
                {
                    "type": "permit",
                    "actor": [actor(COUNCIL)],
                    "securityLabel": [{"system": ACT_CODE, "code": label}],
                }
            ],
        }
    )
    # The root dissent decides for the GP; the exception permits the council.
    assert rule(gp, person(permit), sensitive)[0] is False
    decision = decide(council, person(permit), sensitive, NOW)
    assert (decision.permit, decision.rule, decision.provision) == (
        True,
        "consent",
        "provision.provision[0]",
    )
    assert decision.consent_id == "c1"


def test_a_permit_without_the_label_does_not_open_restricted_data() -> None:
    broad = consent({"type": "permit", "actor": [actor(COUNCIL)]})
    assert rule(council, person(broad), resource(labels=("PSY",))) == (False, "restricted-label")


def test_dissent_from_the_shared_record() -> None:
    dissent = consent({"type": "deny"})
    decision = decide(gp, person(dissent), resource(), NOW)
    assert (decision.permit, decision.rule, decision.consent_id, decision.provision) == (
        False,
        "consent",
        "c1",
        "provision",
    )


def test_a_dissent_does_not_hide_itself_from_those_caring() -> None:
    dissent = consent({"type": "deny"})
    policy = dataclasses.replace(resource("Consent"), sharing_policy=True)
    assert rule(gp, person(dissent), policy) == (True, "consent-record")
    outsider = requester("RXX", "hospital")
    assert rule(outsider, person(dissent), policy) == (False, "no-relationship")


def test_an_advance_decision_is_the_record_and_a_dissent_covers_it() -> None:
    """A DNACPR decision is a Consent (scope adr), but it is part of the
    record, not the sharing policy: a dissent withholds it like the rest."""
    dissent = consent({"type": "deny"})
    assert rule(gp, person(dissent), resource("Consent")) == (False, "consent")
    assert rule(gp, person(), resource("Consent")) == (True, "implied-consent")


def test_dissent_towards_one_organisation() -> None:
    against_council = consent(
        {"type": "permit", "provision": [{"type": "deny", "actor": [actor(COUNCIL)]}]}
    )
    assert rule(council, person(against_council), resource())[0] is False
    assert rule(gp, person(against_council), resource()) == (True, "consent")


def test_deny_one_kind_of_data_to_everyone() -> None:
    no_meds = consent(
        {
            "type": "permit",
            "provision": [
                {
                    "type": "deny",
                    "class": [
                        {
                            "system": "http://hl7.org/fhir/resource-types",
                            "code": "MedicationStatement",
                        }
                    ],
                }
            ],
        }
    )
    assert rule(gp, person(no_meds), resource("MedicationStatement"))[0] is False
    assert rule(gp, person(no_meds), resource("Condition")) == (True, "consent")


def test_code_and_data_period_matching() -> None:
    snomed = "http://snomed.info/sct"
    hide_old_diabetes = consent(
        {
            "type": "permit",
            "provision": [
                {
                    "type": "deny",
                    "code": [{"coding": [{"system": snomed, "code": "44054006"}]}],
                    "dataPeriod": {"end": "2020-01-01"},
                }
            ],
        }
    )
    old = resource(codes=((snomed, "44054006"),), date="2019-05-01T00:00:00.000000Z")
    new = resource(codes=((snomed, "44054006"),), date="2023-05-01T00:00:00.000000Z")
    other = resource(codes=((snomed, "38341003"),), date="2019-05-01T00:00:00.000000Z")
    assert rule(gp, person(hide_old_diabetes), old)[0] is False
    assert rule(gp, person(hide_old_diabetes), new)[0] is True
    assert rule(gp, person(hide_old_diabetes), other)[0] is True


def test_the_deepest_matching_provision_decides() -> None:
    nested = consent(
        {
            "type": "deny",
            "provision": [
                {
                    "type": "permit",
                    "actor": [actor(GP)],
                    "provision": [{"type": "deny", "class": [{"code": "Observation"}]}],
                }
            ],
        }
    )
    assert (
        decide(gp, person(nested), resource("Condition"), NOW).provision == "provision.provision[0]"
    )
    observation = decide(gp, person(nested), resource("Observation"), NOW)
    assert (observation.permit, observation.provision) == (
        False,
        "provision.provision[0].provision[0]",
    )
    assert decide(council, person(nested), resource("Condition"), NOW).provision == "provision"


def test_deny_wins_across_consents() -> None:
    permit = consent({"type": "permit", "actor": [actor(GP)]}, "c-permit")
    deny = consent({"type": "deny", "actor": [actor(GP)]}, "c-deny")
    for order in ((permit, deny), (deny, permit)):
        decision = decide(gp, person(*order), resource(), NOW)
        assert (decision.permit, decision.consent_id) == (False, "c-deny")


def test_only_active_consents_in_their_period_apply() -> None:
    inactive = consent({"type": "deny"}, status="inactive")
    assert rule(gp, person(inactive), resource()) == (True, "implied-consent")
    expired = consent({"type": "deny", "period": {"end": "2025-01-01"}})
    assert rule(gp, person(expired), resource()) == (True, "implied-consent")
    future = consent({"type": "deny", "period": {"start": "2027-01-01"}})
    assert rule(gp, person(future), resource()) == (True, "implied-consent")


def test_purpose_matching() -> None:
    no_research = consent(
        {"type": "permit", "provision": [{"type": "deny", "purpose": [{"code": "HRESCH"}]}]}
    )
    assert rule(gp, person(no_research), resource()) == (True, "consent")


def test_emergency_access() -> None:
    assert rule(ambulance, person(relationships=()), resource()) == (True, "emergency-access")
    assert rule(hospital_emergency, person(relationships=()), resource()) == (
        True,
        "emergency-access",
    )
    gp_emergency = requester(GP, "gp-practice", "ETREAT")
    assert rule(gp_emergency, person(), resource()) == (False, "emergency-kind")
    assert rule(ambulance, person(), resource(labels=("SEX",))) == (False, "restricted-label")


def test_a_dissent_blocks_emergency_access_only_when_it_says_so() -> None:
    plain_dissent = consent({"type": "deny"})
    assert rule(ambulance, person(plain_dissent), resource()) == (True, "emergency-access")
    emergency_dissent = consent({"type": "deny", "purpose": [{"code": "ETREAT"}]})
    assert rule(ambulance, person(emergency_dissent), resource()) == (False, "consent")


def test_auditors_see_demographics_consent_and_audit_only() -> None:
    for res_type in ("Patient", "Consent", "AuditEvent", "Provenance"):
        assert rule(auditor, person(relationships=()), resource(res_type)) == (True, "audit")
    for res_type in ("Condition", "Observation", "EpisodeOfCare"):
        assert rule(auditor, person(), resource(res_type)) == (False, "audit-scope")
    auditor_treat = requester(AUDIT, "auditor", "TREAT")
    assert rule(auditor_treat, person(), resource("Patient")) == (False, "audit-scope")
    assert rule(requester(GP, "gp-practice", "HCOMPL"), person(), resource()) == (
        False,
        "audit-scope",
    )


def test_an_uninterpretable_consent_withholds_everything_but_from_authors() -> None:
    broken = Person("p1", frozenset({GP}), (), uninterpretable=("c-broken",))
    decision = decide(gp, broken, resource(), NOW)
    assert (decision.permit, decision.rule, decision.consent_id) == (
        False,
        "consent-uninterpretable",
        "c-broken",
    )
    assert rule(requester(HOME, "care-home"), broken, resource()) == (True, "author")
    assert rule(ambulance, broken, resource()) == (False, "consent-uninterpretable")


def test_decisions_explain_themselves() -> None:
    decision = decide(gp, person(consent({"type": "deny"})), resource(), NOW)
    assert decision.explain() == "deny: consent (Consent/c1 provision)"


@pytest.mark.parametrize(
    ("provision", "reason"),
    [
        ({}, "type"),
        ({"type": "maybe"}, "type"),
        (
            {"type": "deny", "actor": [{"reference": {"reference": "Organization/unknown"}}]},
            "resolved",
        ),
        (
            {"type": "deny", "actor": [{"reference": {"reference": "Practitioner/1"}}]},
            "Organization",
        ),
        ({"type": "deny", "class": [{"system": "http://loinc.org", "code": "x"}]}, "resource type"),
        ({"type": "deny", "dataPeriod": {"start": "yesterday"}}, "date"),
        ({"type": "deny", "provision": [{"actor": [actor(GP)]}]}, "type"),
        ({"type": "deny", "somethingElse": True}, "somethingElse"),
        ({"type": "deny", "code": [{"text": "diabetes"}]}, "coding"),
    ],
)
def test_what_cannot_be_interpreted_is_refused_with_a_reason(
    provision: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Uninterpretable, match=reason):
        consent(provision)


def test_an_actor_by_reference_is_resolved_to_its_ods_code() -> None:
    raw = {
        "resourceType": "Consent",
        "id": "c1",
        "status": "active",
        "scope": SCOPE,
        "provision": {
            "type": "deny",
            "actor": [{"reference": {"reference": "Organization/org-1"}}],
        },
    }
    policy = parse_consent(raw, {"Organization/org-1": COUNCIL}.get)
    assert deciding_provision(policy.provision, council, resource(), NOW) is not None
    assert deciding_provision(policy.provision, gp, resource(), NOW) is None
