"""Fixtures the HTTP tests share."""

from tests.http.test_consent import world  # noqa: F401  (several organisations at once)
