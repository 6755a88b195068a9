"""Patch documents for FHIR's patch interaction
(https://hl7.org/fhir/R4/http.html#patch), JSON Patch (RFC 6902) and FHIRPath
Patch (a Parameters resource, https://hl7.org/fhir/R4/fhirpatch.html): read
and checked before anything is read from the store, then applied to the
version the requester may see.

A document that is not a JSON Patch is a bad request (400, the operation and
what is wrong with it); one that cannot be applied to the resource (a path
that is not there, a ``test`` that fails) is unprocessable (422). What the
patch makes of the resource is then checked and written as any update is.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from conformance import fhirpath, validator
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
    if not isinstance(op, str) or op not in _MEMBERS:
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


# -- FHIRPath Patch (https://hl7.org/fhir/R4/fhirpatch.html) ------------------------------

_FHIRPATH_TYPES = ("add", "insert", "delete", "replace", "move")
# What each FHIRPath Patch operation must carry besides its type and path.
_FHIRPATH_PARTS = {
    "add": ("name", "value"),
    "insert": ("index", "value"),
    "delete": (),
    "replace": ("value",),
    "move": ("source", "destination"),
}
_LAST_STEP = re.compile(
    r"^(?P<parent>.+)\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?$"
)


@dataclass(frozen=True)
class FhirPathOperation:
    """One operation of a FHIRPath Patch, its value as the JSON property it
    arrived in (``valueHumanName``: the type, and what to write)."""

    type: str
    path: str
    name: str | None = None
    value_key: str | None = None
    value: Any = None
    index: int | None = None
    source: int | None = None
    destination: int | None = None


@dataclass(frozen=True)
class FhirPathPatch:
    """A checked FHIRPath Patch: a Parameters resource of ``operation`` parts."""

    operations: tuple[FhirPathOperation, ...]

    def apply(self, resource: dict[str, Any]) -> Any:
        """What the operations make of ``resource`` (left as it was), or
        ``Unprocessable`` naming the operation that could not be applied."""
        document = copy.deepcopy(resource)
        for index, operation in enumerate(self.operations):
            try:
                _apply_fhirpath(document, operation)
            except _CannotApply as exc:
                raise Unprocessable(
                    f"patch operation {index} ({operation.type} {operation.path}) cannot be "
                    f"applied: {exc}",
                    code="GW-0123",
                ) from None
        return document


class _CannotApply(Exception):
    """Why one FHIRPath Patch operation does not apply to the resource."""


def parse_fhirpath_patch(body: Any) -> FhirPathPatch:
    """``body`` (parsed JSON) as a FHIRPath Patch, or ``InvalidRequest``
    saying which operation is wrong and why."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest(
            "a FHIRPath Patch is a Parameters resource of operation parameters",
            code="GW-0124",
        )
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or not parameters:
        raise InvalidRequest("a FHIRPath Patch needs at least one operation", code="GW-0124")
    operations = []
    for index, parameter in enumerate(parameters):
        try:
            operations.append(_fhirpath_operation(parameter))
        except ValueError as exc:
            raise InvalidRequest(f"patch operation {index}: {exc}", code="GW-0124") from None
    return FhirPathPatch(tuple(operations))


def _fhirpath_operation(parameter: Any) -> FhirPathOperation:
    if not isinstance(parameter, dict) or parameter.get("name") != "operation":
        raise ValueError("each parameter is named operation")
    parts: dict[str, dict[str, Any]] = {}
    for part in parameter.get("part") or []:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise ValueError("each part is an object with a name")
        parts[part["name"]] = part
    kind = (parts.get("type") or {}).get("valueCode")
    if kind not in _FHIRPATH_TYPES:
        raise ValueError(f"type must be one of {', '.join(_FHIRPATH_TYPES)}, not {kind!r}")
    path = (parts.get("path") or {}).get("valueString")
    if not isinstance(path, str) or not path.strip():
        raise ValueError("path (valueString) is required")
    try:
        fhirpath.compile(path)
    except fhirpath.FhirPathError as exc:
        raise ValueError(f"path {path!r} is not FHIRPath: {exc}") from None
    for needed in _FHIRPATH_PARTS[kind]:
        if needed not in parts:
            raise ValueError(f"{kind} needs {needed!r}")
    value_key, value = None, None
    if "value" in parts:
        found = [(k, v) for k, v in parts["value"].items() if k.startswith("value")]
        if len(found) != 1:
            raise ValueError(
                "value must carry exactly one value[x] (complex values as parts are not taken)"
            )
        value_key, value = found[0]

    def integer(name: str) -> int | None:
        number = (parts.get(name) or {}).get("valueInteger")
        if name in parts and (
            not isinstance(number, int) or isinstance(number, bool) or number < 0
        ):
            raise ValueError(f"{name} must be a valueInteger of 0 or more")
        return number if isinstance(number, int) else None

    name = (parts.get("name") or {}).get("valueString")
    if kind == "add" and (
        not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name)
    ):
        raise ValueError("name (valueString) names the element to add")
    return FhirPathOperation(
        kind,
        path,
        name if isinstance(name, str) else None,
        value_key,
        value,
        integer("index"),
        integer("source"),
        integer("destination"),
    )


def _apply_fhirpath(document: dict[str, Any], operation: FhirPathOperation) -> None:
    if operation.type == "add":
        container = _one_object(document, operation.path)
        assert operation.name is not None and operation.value_key is not None
        table = _table_of(document, container)
        key = _element_key(table, operation.name, operation.value_key)
        existing = container.get(key)
        if isinstance(existing, list):
            existing.append(operation.value)
        elif existing is not None:
            raise _CannotApply(f"{operation.name} already has a value and does not repeat")
        elif _repeats(table, key):
            container[key] = [operation.value]
        else:
            container[key] = operation.value
        return
    if operation.type in ("insert", "move"):
        parent, key = _one_place(document, operation.path, whole_list=True)
        items = parent[key] if isinstance(parent, dict) else None
        if not isinstance(items, list):
            raise _CannotApply("the path does not name a repeating element")
        if operation.type == "insert":
            assert operation.index is not None
            if operation.index > len(items):
                raise _CannotApply(f"index {operation.index} is past the end ({len(items)})")
            items.insert(operation.index, operation.value)
            return
        assert operation.source is not None and operation.destination is not None
        if operation.source >= len(items) or operation.destination >= len(items):
            raise _CannotApply("source and destination must be within the list")
        items.insert(operation.destination, items.pop(operation.source))
        return
    places = _places(document, operation.path)
    if operation.type == "delete":
        if len(places) > 1:
            raise _CannotApply("the path names more than one element")
        for parent, key in places:
            _remove(parent, key)
        return
    if len(places) != 1:
        raise _CannotApply("the path must name exactly one element")
    parent, key = places[0]
    parent[key] = operation.value


def _one_object(document: dict[str, Any], path: str) -> dict[str, Any]:
    found = fhirpath.compile(path).run(document)
    if len(found) != 1 or not isinstance(found[0], dict):
        raise _CannotApply("the path must name exactly one element that holds others")
    item: dict[str, Any] = found[0]
    return item


def _places(document: dict[str, Any], path: str) -> list[tuple[Any, Any]]:
    """Where each element the path names sits: (its object, its key) or (its
    list, its index)."""
    found = fhirpath.compile(path).run(document)
    if not found:
        return []
    if all(isinstance(item, dict) for item in found):
        return [_place_of(document, item) for item in found]
    return [_one_place(document, path, whole_list=False)]


def _one_place(document: dict[str, Any], path: str, *, whole_list: bool) -> tuple[Any, Any]:
    """The place of a primitive (or, ``whole_list``, of a repeating element's
    list) that the path's last step names."""
    step = _LAST_STEP.match(path.strip())
    if step is None:
        raise _CannotApply("the path must end in an element's name")
    container = _one_object(document, step["parent"])
    key = _present_key(container, step["name"])
    if key is None:
        raise _CannotApply(f"there is no {step['name']}")
    if step["index"] is None:
        if whole_list or not isinstance(container[key], list):
            return container, key
        if len(container[key]) != 1:
            raise _CannotApply(f"{step['name']} repeats: name one with [index]")
        return container[key], 0
    index = int(step["index"])
    values = container[key]
    if not isinstance(values, list) or index >= len(values):
        raise _CannotApply(f"{step['name']} has no [{index}]")
    return values, index


def _present_key(container: dict[str, Any], name: str) -> str | None:
    if name in container:
        return name
    for key in container:  # a choice element: deceased is deceasedBoolean
        if key.startswith(name) and key[len(name) : len(name) + 1].isupper():
            return key
    return None


def _place_of(document: Any, target: dict[str, Any]) -> tuple[Any, Any]:
    steps = _path_to(document, target)
    if not steps:
        raise _CannotApply("the element named is not part of the resource")
    return steps[-1]


def _path_to(document: Any, target: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    """The steps from the resource down to ``target``, each (the object or
    list it is taken from, its key or index), found by identity; None when
    ``target`` is not in the resource."""
    stack: list[tuple[Any, list[tuple[Any, Any]]]] = [(document, [])]
    while stack:
        node, steps = stack.pop()
        if node is target:
            return steps
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        stack.extend(
            (value, [*steps, (node, key)]) for key, value in pairs if isinstance(value, dict | list)
        )
    return None


def _remove(parent: Any, key: Any) -> None:
    if isinstance(parent, list):
        parent.pop(key)
        return
    del parent[key]
    parent.pop(f"_{key}", None)


def _element_key(table: Any, name: str, value_key: str) -> str:
    """The JSON property ``name`` is written as in an object of ``table``:
    the name, or for a choice element the name and the value's type
    (deceasedBoolean)."""
    if table is None or name in table.elements:
        return name
    choice = name + value_key.removeprefix("value")
    return choice if choice in table.elements else name


def _repeats(table: Any, key: str) -> bool:
    element = table.elements.get(key) if table is not None else None
    return bool(element is not None and element.many)


def _table_of(document: dict[str, Any], container: dict[str, Any]) -> Any:
    """The validator's table of ``container``, found from the resource's by
    the properties that lead to it; None where it cannot be told."""
    if not isinstance(document.get("resourceType"), str):
        return None
    steps = _path_to(document, container)
    if steps is None:
        return None
    try:
        current = validator.table(document["resourceType"])
    except KeyError:
        return None
    for parent, key in steps:
        if not isinstance(parent, dict):
            continue  # a list's index: the element is the list's
        element = current.elements.get(key)
        if element is None or element.table is None:
            return None
        current = element.table
    return current


# Either kind of patch: each applies itself to a resource.
Patch = JsonPatch | FhirPathPatch
