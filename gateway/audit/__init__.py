"""The audit log: every access recorded as an AuditEvent, the entries kept
as the leaves of an RFC 6962 Merkle tree whose signed heads anyone can check."""
