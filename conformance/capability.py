"""The CapabilityStatement, generated from ``conformance.registry``.

https://hl7.org/fhir/R4/capabilitystatement.html. Nothing here is written by
hand per type: what the registry lists is what the server routes.
"""

from __future__ import annotations

from typing import Any

from conformance.registry import RESOURCES, SYSTEM_INTERACTIONS, TypeInteraction


def capability_statement(*, base_url: str, software_version: str, published: str) -> dict[str, Any]:
    """A CapabilityStatement (kind ``instance``) for the server at ``base_url``."""
    resources: list[dict[str, Any]] = []
    for support in RESOURCES.values():
        entry: dict[str, Any] = {
            "type": support.type,
            "interaction": [{"code": i.value} for i in TypeInteraction if support.supports(i)],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": support.supports(TypeInteraction.UPDATE),
            "conditionalCreate": support.conditional_create
            and support.supports(TypeInteraction.CREATE),
            "conditionalUpdate": support.conditional_update
            and support.supports(TypeInteraction.UPDATE),
            "conditionalDelete": "not-supported",
            "conditionalRead": "not-supported",
        }
        if support.profile:
            entry["profile"] = support.profile
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "London care gateway",
        "kind": "instance",
        "software": {"name": "London care gateway", "version": software_version},
        "implementation": {
            "description": "FHIR R4 gateway for health and social care",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": i.value} for i in sorted(SYSTEM_INTERACTIONS)],
            }
        ],
    }
