"""FHIR documents built on request for one requester: the patient summary and the Red Bag;
their sections, narratives, signature and printable rendering."""
