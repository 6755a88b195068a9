"""Hospital feeds: HL7 v2.4 ADT as NHS trusts send it (HL7 UK / ITK)."""
