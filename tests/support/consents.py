"""A person's privacy Consent as the tests write it: scope patient-privacy,
category LOINC 59284-0, a policy rule (ppc-1) and the provisions given."""

from __future__ import annotations

from typing import Any

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def privacy_consent(
    patient: dict[str, Any], provision: dict[str, Any], policy: str = "OPTIN"
) -> dict[str, Any]:
    """An active privacy Consent of the person ``patient`` refers to (a
    reference by id, or by identifier), with ``provision``; ``policy``: the
    v3 ActCode rule its provisions follow (OPTIN, OPTOUT)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": patient,
        # ppc-1: the rule the provisions follow.
        "policyRule": {"coding": [{"system": ACT_CODE, "code": policy}]},
        "provision": provision,
    }
