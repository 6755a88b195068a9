"""GP Connect Access Record: Structured: the STU3 Bundle a GP practice's
system answers ``$gpc.getstructuredrecord`` with, mapped to UK Core shaped
FHIR R4 resources.

``record_key`` names one version of a response (the loader's "seen it"
key); ``map_structured_record`` maps it, or says why it cannot.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured.html
"""

from mappings.gpconnect.bundle import record_key
from mappings.gpconnect.structured import map_structured_record

__all__ = ["map_structured_record", "record_key"]
