"""A request's JSON body parsed within the shape limits the settings set:
how deeply it nests, how many values it holds and how many entries a
Bundle has. Each is checked once, right after parsing and before any
validation, mapping or write, so an oversized body costs a parse and one
pass over it, and its answer (naming the limit and its value: 413 for too
many values or entries, 400 for nesting, as the validator answers it) is
the same whatever the body was sent to.

The byte size is bounded before this, as the body is read
(``middleware.read_body``); a string's length is FHIR's own rule (1 MB) and
the validator's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import fhirjson
from gateway.config import Settings
from gateway.errors import InvalidRequest, Issue, PayloadTooLarge


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_depth: int
    max_values: int
    max_bundle_entries: int

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(
            max_depth=settings.max_json_depth,
            max_values=settings.max_json_values,
            max_bundle_entries=settings.max_bundle_entries,
        )


def parse(raw: bytes, limits: BodyLimits) -> Any:
    """``raw`` parsed, or ``InvalidRequest`` (not JSON) or ``PayloadTooLarge``
    (over a limit)."""
    body = fhirjson.loads(raw)
    check(body, raw, limits)
    return body


def check(body: Any, raw: bytes, limits: BodyLimits) -> None:
    """Refuse ``body`` (parsed from ``raw``) if it is over a limit."""
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        entries = body.get("entry")
        if isinstance(entries, list) and len(entries) > limits.max_bundle_entries:
            raise _too_large(
                f"the Bundle has {len(entries)} entries; this server takes at most "
                f"{limits.max_bundle_entries} in one request (send the rest in further requests)",
                "GW-0106",
                "Bundle.entry",
            )
    # Every value but the first follows a ':', ',' or '[' and every container
    # opens with '{' or '['. Counted in C, these bound both the values and the
    # depth from above, so the walk below is needed only when a bound is
    # over its limit (punctuation inside strings counts too, which can only
    # send a body to the exact walk, never let one through).
    openings = raw.count(b"{") + raw.count(b"[")
    bound = raw.count(b":") + raw.count(b",") + openings + 1
    if bound <= limits.max_values and openings <= limits.max_depth:
        return
    _walk(body, limits)


def _walk(body: Any, limits: BodyLimits) -> None:
    """Count ``body``'s values and measure its depth, stopping at the first
    limit passed. Only containers are visited; their scalars are counted."""
    values = 1
    stack: list[tuple[Any, int]] = [(body, 1)] if body.__class__ in _CONTAINERS else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if value.__class__ is dict else value
        values += len(children)
        if values > limits.max_values:
            raise _too_large(
                f"the body holds more than {limits.max_values} JSON values, the most this "
                "server takes in one request",
                "GW-0105",
            )
        if depth > limits.max_depth:
            # 400, as the validator answers a resource nested too deep for it.
            message = (
                f"the body nests objects and arrays more than {limits.max_depth} deep, the most "
                "this server takes"
            )
            raise InvalidRequest(message, code="GW-0104", issues=[Issue("too-costly", message)])
        stack.extend((child, depth + 1) for child in children if child.__class__ in _CONTAINERS)


_CONTAINERS = (dict, list)


def _too_large(message: str, code: str, expression: str | None = None) -> PayloadTooLarge:
    return PayloadTooLarge(
        message,
        code=code,
        issues=[Issue("too-long", message, (expression,) if expression else ())],
    )
