"""Holding a hidden resource's answer to be a missing one's, byte for byte."""

from __future__ import annotations

from collections.abc import Callable

import httpx

# Headers every answer has of its own.
_PER_REQUEST = ("x-request-id", "date")


def _headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k not in _PER_REQUEST}


def answered_alike(
    ask: Callable[[str], httpx.Response], hidden_id: str, missing_id: str
) -> httpx.Response:
    """Asks about ``hidden_id`` and about ``missing_id``, where nothing
    stands, and holds the answers to be the same bytes: status, headers but
    the request's own, and body, where the id asked about (which a
    not-found answer names) is the one difference. The hidden one's answer."""
    hidden, missing = ask(hidden_id), ask(missing_id)
    assert hidden.status_code == missing.status_code, (hidden.text, missing.text)
    assert hidden.content.replace(hidden_id.encode(), missing_id.encode()) == missing.content
    assert _headers(hidden) == _headers(missing)
    return hidden
