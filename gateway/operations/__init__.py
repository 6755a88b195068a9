"""The gateway's own operations, above the FHIR interactions: a source
pushing its records (``$ingest``), the documents built for a requester
(``$summary``, ``$red-bag``) and the compliance question of what an
organisation would see (``$access-check``). Each runs for a request's
repository (``gateway.repository``), like every interaction."""
