"""The identifier systems the gateway names organisations and clients by.

https://hl7.org/fhir/R4/datatypes.html#Identifier. Written by provenance and
the audit log, read by documents and the audit queries: a kernel module, so
that each layer spells them alike without importing another layer for them.
(``consent.parse`` keeps its own ``ODS_SYSTEM``: consent imports nothing
from the gateway.)
"""

from __future__ import annotations

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
"""An organisation's NHS ODS code."""

CLIENT_SYSTEM = "urn:london-care-gateway:client"
"""A client system registered with the gateway, by its client id."""
