"""FHIR RESTful interactions as plain functions over a ``Store``.

Nothing here knows about HTTP: functions take parsed input and return domain
results or raise ``gateway.errors`` exceptions; ``gateway.http`` adapts them.
https://hl7.org/fhir/R4/http.html
"""
