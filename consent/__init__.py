"""Consent decisions: pure functions from requester, person and resource to a verdict.

No HTTP and no database code lives here. The decision engine arrives with the
consent issue; this package exists now so that the import contracts hold from
the first commit.
"""
