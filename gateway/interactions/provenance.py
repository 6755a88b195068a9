"""Who wrote what: each write a client makes is authored by its organisation.

The organisation goes in the written resource's ``meta.source``
(``urn:ods:<ODS code>``, searchable with ``_source``), and a Provenance
(https://hl7.org/fhir/R4/provenance.html) in the same unit of work names the
versions written, the activity, the organisation as author and the client
system that sent them; one Provenance per activity per request, so a
100-entry transaction adds one, not a hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consent.model import Requester
from gateway import fhirjson
from gateway.identifiers import CLIENT_SYSTEM, ODS_SYSTEM
from gateway.store import StoredVersion

_ACTIVITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_AGENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
# The author of what the gateway writes itself (relabelling, a
# Subscription's status, an operator's merge).
GATEWAY_ODS = "GATEWAY"
ACTIVITIES = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}


@dataclass(frozen=True)
class Author:
    """The organisation a write is made for, and the client system that sent it."""

    org_ods: str
    org_name: str
    client_id: str
    client_name: str

    @classmethod
    def of(cls, requester: Requester) -> Author:
        """The author of what ``requester`` writes: its organisation, through
        its client."""
        return cls(
            requester.org_ods, requester.org_name, requester.client_id, requester.client_name
        )

    @classmethod
    def gateway(cls, client_id: str, client_name: str) -> Author:
        """The gateway itself, writing for ``client_id`` (one of its own
        jobs, or an operator's command): never a registered client."""
        return cls(GATEWAY_ODS, "London Care Gateway", client_id, client_name)

    @property
    def is_gateway(self) -> bool:
        return self.org_ods == GATEWAY_ODS

    @property
    def source(self) -> str:
        """``meta.source`` of what it writes."""
        return f"urn:ods:{self.org_ods}"


def _agent(kind: str, who: dict[str, Any]) -> dict[str, Any]:
    return {"type": {"coding": [{"system": _AGENT_TYPE_SYSTEM, "code": kind}]}, "who": who}


def provenance(author: Author, activity: str, written: Sequence[StoredVersion]) -> dict[str, Any]:
    """The Provenance of ``written`` (versions made by one ``activity``:
    CREATE, UPDATE or DELETE)."""
    return {
        "resourceType": "Provenance",
        "meta": {"source": author.source},
        "target": [{"reference": f"{v.res_type}/{v.res_id}/_history/{v.version}"} for v in written],
        "recorded": fhirjson.instant(),
        "activity": {"coding": [{"system": _ACTIVITY_SYSTEM, "code": activity}]},
        "agent": [
            _agent(
                "author",
                {
                    "type": "Organization",
                    "identifier": {"system": ODS_SYSTEM, "value": author.org_ods},
                    "display": author.org_name,
                },
            ),
            _agent(
                "device",
                {
                    "type": "Device",
                    "identifier": {"system": CLIENT_SYSTEM, "value": author.client_id},
                    "display": author.client_name,
                },
            ),
        ],
    }
