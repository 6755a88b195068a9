"""Analysis-ready views over a population health bulk export.

A FHIR Bulk Data export (a folder of NDJSON files and its ``manifest.json``)
is read a line at a time (``export``), each resource given to the SQL on
FHIR v2 ViewDefinitions that want its type (``views``, with the FHIRPath of
``fhirpath``), and their rows written in batches through DuckDB to Parquet
and CSV (``output``). The views the gateway ships (``views/*.json``) and the
SQL run after them (``views/derive.sql``: age bands, lengths of stay,
long-term condition flags) are in ``shipped``; the integrated care pilot's
risk stratification cohort in ``cohort``; ``gateway analytics`` in
``commands``. ``docs/analytics.md`` documents the views and the queries.

Imports nothing from the gateway but its kernel, and ``conformance``.

https://build.fhir.org/ig/FHIR/sql-on-fhir-v2/ (SQL on FHIR v2),
https://hl7.org/fhir/uv/bulkdata/ (Bulk Data Access v2)
"""
