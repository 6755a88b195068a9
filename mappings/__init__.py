"""Mappings from source records (HL7 v2 ADT, GP Connect, council CLD, care-home
exports) into UK Core shaped FHIR R4 resources. One sub-package per source
arrives with the mappings issue.
"""
