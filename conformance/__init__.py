"""What the gateway conforms to: the registry of supported types and
interactions, the CapabilityStatement built from it, and resource validation.
Depends on nothing else in the project."""
