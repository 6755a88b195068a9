"""Loading source records (hospital, GP, council and care-home) through the
same write path as the API. ``sources`` reads each format into mapped
records; ``records`` writes each as one transaction; ``reconcile`` decides
what of each resource is new against what is on file; ``person`` merges the
person every source shares element by element, and keeps who gave each;
``ledger`` notes every record loaded; ``matches`` lists the people who may
be one person for an operator."""

from gateway.loading.records import LoadReport, Rejection, load, load_record, load_stream
from gateway.loading.source import ForSource, author_for
from gateway.loading.sources import FORMATS, SourceRecord, hl7v2_message_record

__all__ = [
    "FORMATS",
    "ForSource",
    "LoadReport",
    "Rejection",
    "SourceRecord",
    "author_for",
    "hl7v2_message_record",
    "load",
    "load_record",
    "load_stream",
]
