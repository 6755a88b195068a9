"""Care homes: a digital social care record's export of one resident (the
Red Bag's contents) into UK Core shaped FHIR R4 resources."""
