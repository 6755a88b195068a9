"""The London care gateway: a FHIR R4 gateway for health and social care."""

__version__ = "0.1.0"
