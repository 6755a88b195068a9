"""The auditors' web console: server-rendered pages over the audit log."""
