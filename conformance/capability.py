"""The CapabilityStatement, generated from ``conformance.registry``.

https://hl7.org/fhir/R4/capabilitystatement.html. Nothing here is written by
hand per type: what the registry lists is what the server routes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance import profiles
from conformance.registry import OPERATIONS, RESOURCES, SYSTEM_INTERACTIONS, TypeInteraction


@dataclass(frozen=True)
class AdvertisedParameter:
    """A search parameter as the CapabilityStatement lists it."""

    name: str
    type: str
    definition: str | None = None


def _none(_: str) -> Sequence[Any]:
    return ()


# Where a client may create with PUT: a write must answer alike for an id
# where a record it may not see stands and one where nothing does.
_UPDATE_CREATE = (
    "Update as create only at ids of the client organisation's own: "
    "`<ODS code>-<id>`. Elsewhere, an update where nothing the client may see "
    "stands is 404, whether nothing is there or consent hides what is."
)


_TOPIC_CANONICAL = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "capabilitystatement-subscriptiontopic-canonical"
)


def capability_statement(
    *,
    base_url: str,
    software_version: str,
    published: str,
    search_parameters: Callable[[str], Sequence[AdvertisedParameter]] = _none,
    reference_parameters: Callable[[str], Sequence[str]] = _none,
    token_endpoint: str | None = None,
    subscription_topics: Sequence[str] = (),
) -> dict[str, Any]:
    """A CapabilityStatement (kind ``instance``) for the server at ``base_url``;
    with ``token_endpoint``, its ``rest.security`` says SMART Backend Services
    (https://hl7.org/fhir/smart-app-launch/conformance.html#using-cors). The
    ``subscription_topics`` (canonical URLs) are listed on Subscription, as
    the Subscriptions Backport IG asks."""
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
            # If-None-Match on a read answers 304; If-Modified-Since is not read.
            "conditionalRead": "not-match",
        }
        if support.type == "Subscription" and subscription_topics:
            entry["extension"] = [
                {"url": _TOPIC_CANONICAL, "valueCanonical": url} for url in subscription_topics
            ]
        if support.profile:
            entry["profile"] = support.profile
        # The profiles a resource of the type is checked against when it
        # claims them, or $validate is asked to (conformance.profiles).
        supported = profiles.supported(support.type)
        if supported:
            entry["supportedProfile"] = list(supported)
        if support.supports(TypeInteraction.UPDATE):
            entry["documentation"] = _UPDATE_CREATE
        operations = [o for o in OPERATIONS if support.type in o.types]
        if operations:
            entry["operation"] = [
                {"name": o.name, "definition": o.definition, "documentation": o.documentation}
                for o in operations
            ]
        if support.supports(TypeInteraction.SEARCH_TYPE):
            references = reference_parameters(support.type)
            if references:
                entry["searchInclude"] = [f"{support.type}:{code}" for code in references]
            entry["searchParam"] = [
                {"name": p.name, "type": p.type}
                | ({"definition": p.definition} if p.definition else {})
                for p in search_parameters(support.type)
            ]
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
                **({"security": _security(token_endpoint)} if token_endpoint else {}),
                "resource": resources,
                "interaction": [{"code": i.value} for i in sorted(SYSTEM_INTERACTIONS)],
                "operation": [
                    {"name": o.name, "definition": o.definition, "documentation": o.documentation}
                    for o in OPERATIONS
                    if not o.types
                ],
            }
        ],
    }


def _security(token_endpoint: str) -> dict[str, Any]:
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "SMART Backend Services: client_credentials with private_key_jwt",
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_endpoint}],
            }
        ],
    }
