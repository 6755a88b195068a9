"""JSON Patch documents (RFC 6902) for FHIR's patch interaction
(https://hl7.org/fhir/R4/http.html#patch): read and checked before anything
is read from the store, then applied to the version the requester may see.

A document that is not a JSON Patch is a bad request (400, the operation and
what is wrong with it); one that cannot be applied to the resource (a path
that is not there, a ``test`` that fails) is unprocessable (422). What the
patch makes of the resource is then checked and written as any update is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from gateway.errors import InvalidRequest, Unprocessable

MEDIA_TYPE = "application/json-patch+json"
# What each operation must carry besides ``op`` and ``path`` (RFC 6902, 4).
_MEMBERS = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


@dataclass(frozen=True)
class JsonPatch:
    """A checked JSON Patch document."""

    operations: tuple[dict[str, Any], ...]

    def apply(self, resource: dict[str, Any]) -> Any:
        """What the operations make of ``resource`` (left as it was), or
        ``Unprocessable`` naming the operation that could not be applied."""
        document = copy.deepcopy(resource)
        for index, operation in enumerate(self.operations):
            try:
                document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
            except jsonpatch.JsonPatchTestFailed:
                raise Unprocessable(
                    f"patch operation {index} (test {operation['path']}): the resource does "
                    "not hold that value",
                    code="GW-0122",
                ) from None
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise Unprocessable(
                    f"patch operation {index} ({operation['op']} {operation['path']}) cannot "
                    f"be applied: {exc}",
                    code="GW-0123",
                ) from None
        return document


def parse(body: Any) -> JsonPatch:
    """``body`` (parsed JSON) as a JSON Patch document, or ``InvalidRequest``
    saying which operation is wrong and why."""
    if not isinstance(body, list) or not body:
        raise InvalidRequest(
            "a JSON Patch document is a non-empty array of operations", code="GW-0121"
        )
    operations = []
    for index, operation in enumerate(body):
        problem = _problem(operation)
        if problem:
            raise InvalidRequest(f"patch operation {index}: {problem}", code="GW-0121")
        operations.append(operation)
    return JsonPatch(tuple(operations))


def _problem(operation: Any) -> str | None:
    if not isinstance(operation, dict):
        return "an operation is a JSON object"
    op = operation.get("op")
    if op not in _MEMBERS:
        return f"op must be one of {', '.join(_MEMBERS)}, not {op!r}"
    for member in ("path", *_MEMBERS[op]):
        if member not in operation:
            return f"{op} needs {member!r}"
    for member in ("path", "from"):
        if member in operation and not _is_pointer(operation[member]):
            return f"{member} {operation[member]!r} is not a JSON Pointer"
    if op in ("add", "replace", "move", "copy", "remove") and operation["path"] == "":
        return "a patch changes a resource's elements, not the whole resource"
    return None


def _is_pointer(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        jsonpointer.JsonPointer(value)
    except jsonpointer.JsonPointerException:
        return False
    return True
