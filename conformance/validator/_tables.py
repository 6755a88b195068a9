"""Element tables compiled from the vendored R4 StructureDefinitions.

One ``Table`` per type (resource, complex data type, Quantity profile) and
per backbone element, keyed by the JSON property names an instance may use:
``valueQuantity`` and ``valueString`` for ``value[x]``, ``_birthDate`` for the
id and extensions of the primitive ``birthDate``
(https://hl7.org/fhir/R4/json.html). Each ``Element`` says how its values are
checked, precomputed so that validation is a dictionary lookup and a branch
per property. Tables are compiled on first use and kept.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

from conformance.definitions import structures, value_sets
from conformance.validator import _primitives

# Element kinds.
PRIMITIVE = 0  # a JSON boolean, number or string
COMPLEX = 1  # a JSON object: a data type or a backbone element
RESOURCE = 2  # a JSON object with its own resourceType (contained, Bundle entries)
SIBLING = 3  # "_name": the id and extensions of the primitive "name"
RESOURCE_TYPE = 4  # "resourceType" at a resource's root
PROHIBITED = 5  # max 0 in a profile (SimpleQuantity.comparator)

# Invariants that the structural walk checks itself, so that an invariant
# evaluator is not asked to (they would cost a FHIRPath evaluation on every
# element): ele-1 and ext-1 on every element and extension, and the three
# rules of DomainResource about contained resources that need only their
# shape (https://hl7.org/fhir/R4/domainresource.html#invs).
STRUCTURAL_INVARIANTS = frozenset({"ele-1", "ext-1", "dom-2", "dom-4", "dom-5"})

# Invariants of a resource that do not apply to it when it is contained.
_NOT_CONTAINED = frozenset({"dom-6"})

# Types whose values a binding can apply to, and how a binding reads them.
_BOUND_CODES = frozenset({"code", "uri", "string"})


class Constraint(NamedTuple):
    """An invariant of an element or type: https://hl7.org/fhir/R4/elementdefinition.html#invs."""

    key: str
    severity: str  # error | warning
    human: str
    expression: str


class Binding:
    """A required or extensible binding whose value set could be expanded."""

    __slots__ = ("by_system", "codes", "name", "strength", "url")

    def __init__(self, strength: str, url: str, name: str, by_system: dict[str, frozenset[str]]):
        self.strength = strength
        self.url = url
        self.name = name
        self.by_system = by_system
        self.codes = frozenset(code for codes in by_system.values() for code in codes)

    def describe(self) -> str:
        if len(self.codes) <= 12:
            return f"{self.name} ({' | '.join(sorted(self.codes))})"
        return f"{self.name} ({self.url})"


class Element:
    """One JSON property of a table."""

    __slots__ = (
        "binding",
        "check",
        "choice",
        "code_binding",
        "constraints",
        "evaluated",
        "fixed",
        "key",
        "kind",
        "many",
        "max",
        "min",
        "name",
        "path",
        "pattern",
        "table",
        "targets",
        "type_code",
    )

    def __init__(self, key: str, path: str, kind: int, type_code: str) -> None:
        self.key = key  # the JSON property
        self.name = key[1:] if kind == SIBLING else key  # its name in an issue's path
        self.path = path  # the element's path in its StructureDefinition
        self.kind = kind
        self.type_code = type_code
        self.min = 0
        self.max: int | None = None  # None: unbounded
        self.many = False  # a JSON array
        self.check: _primitives.Check | None = None
        self.table: Table | None = None
        self.choice: str | None = None  # "value" for value[x]
        self.binding: Binding | None = None
        self.code_binding: frozenset[str] | None = None  # a required binding's codes
        self.targets: frozenset[str] | None = None  # Reference target types; None: any
        self.fixed: Any = None
        self.pattern: Any = None
        self.constraints: tuple[Constraint, ...] = ()  # every invariant on each value
        self.evaluated: tuple[Constraint, ...] = ()  # those left to an evaluator

    def __repr__(self) -> str:
        return f"Element({self.path!r} as {self.key!r}: {self.type_code})"


class Table:
    """The elements of one type or backbone element, by JSON property."""

    __slots__ = (
        "binding",
        "constraints",
        "elements",
        "evaluated",
        "evaluated_contained",
        "is_extension",
        "is_resource",
        "path",
        "required",
        "type",
    )

    def __init__(self, type_name: str, path: str) -> None:
        self.type = type_name
        self.path = path
        self.elements: dict[str, Element] = {}
        self.required: tuple[tuple[str, tuple[str, ...]], ...] = ()
        self.is_resource = False
        self.is_extension = False
        self.binding: Binding | None = None  # a binding of the type itself (Age units)
        self.constraints: tuple[Constraint, ...] = ()  # the type's own invariants
        self.evaluated: tuple[Constraint, ...] = ()  # those left to an evaluator
        self.evaluated_contained: tuple[Constraint, ...] = ()  # and for a contained one

    def __repr__(self) -> str:
        return f"Table({self.type!r} at {self.path!r}, {len(self.elements)} properties)"


# Compiled tables, published whole: a table is put here only once every table
# it refers to is complete, so another thread never reads one half-filled.
_tables: dict[str, Table] = {}
_compiling: dict[str, Table] = {}  # seen only by the thread holding _lock
_lock = threading.RLock()


def _types() -> dict[str, Any]:
    types: dict[str, Any] = structures()["types"]
    return types


@cache
def resource_types() -> frozenset[str]:
    """Every concrete FHIR R4 resource type."""
    return frozenset(
        name
        for name, definition in _types().items()
        if definition["kind"] == "resource" and not definition.get("abstract")
    )


def not_r4() -> dict[str, str]:
    """R4 resource types whose definitions could not be vendored, and why."""
    reasons: dict[str, str] = structures()["notR4"]
    return reasons


@cache
def _primitive_types() -> frozenset[str]:
    return frozenset(n for n, d in _types().items() if d["kind"] == "primitive-type")


@cache
def checker(type_name: str) -> _primitives.Check:
    return _primitives.checker(type_name, _types()[type_name])


@cache
def binding(strength: str, url: str) -> Binding | None:
    """The binding to a value set, or None when its codes are not known."""
    entry = value_sets()["valueSets"].get(url)
    if entry is None or "codes" not in entry:
        return None
    by_system = {system: frozenset(codes) for system, codes in entry["codes"].items()}
    return Binding(strength, url, entry.get("name") or url, by_system)


def table(type_name: str) -> Table:
    """The compiled table of a resource or complex data type (KeyError if none)."""
    found = _tables.get(type_name)
    if found is not None:
        return found
    with _lock:
        found = _tables.get(type_name) or _compiling.get(type_name)
        if found is not None:
            return found
        outermost = not _compiling
        try:
            found = _Compiler(type_name).compile()
            if outermost:
                _tables.update(_compiling)
        finally:
            if outermost:
                _compiling.clear()
        return found


def _constraints(keys: list[str], defined: dict[str, Any]) -> tuple[Constraint, ...]:
    return tuple(
        Constraint(key, defined[key]["severity"], defined[key]["human"], defined[key]["expression"])
        for key in keys
    )


def _merge(*groups: tuple[Constraint, ...]) -> tuple[Constraint, ...]:
    seen: dict[str, Constraint] = {}
    for group in groups:
        for constraint in group:
            seen.setdefault(constraint.key, constraint)
    return tuple(seen.values())


def _evaluated(constraints: tuple[Constraint, ...]) -> tuple[Constraint, ...]:
    return tuple(c for c in constraints if c.key not in STRUCTURAL_INVARIANTS and c.expression)


def _json_name(base: str, type_code: str) -> str:
    return base + type_code[0].upper() + type_code[1:]


class _Compiler:
    """Compiles one StructureDefinition's snapshot into its tables."""

    def __init__(self, type_name: str) -> None:
        self.name = type_name
        self.definition = _types()[type_name]
        self.defined: dict[str, Any] = self.definition["constraints"]
        self.children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for element in self.definition["elements"][1:]:
            parent, _, _ = element["path"].rpartition(".")
            self.children[parent].append(element)
        self.backbones: dict[str, Table] = {}

    def compile(self) -> Table:
        root = self.definition["elements"][0]
        if self.definition["kind"] not in ("resource", "complex-type"):
            raise KeyError(f"{self.name} is not a resource or complex type")
        result = Table(self.name, root["path"])
        _compiling[self.name] = result  # before its elements: types refer to themselves
        self.backbones[root["path"]] = result
        result.is_resource = self.definition["kind"] == "resource"
        result.is_extension = self.name == "Extension"
        result.constraints = _constraints(root.get("constraint", []), self.defined)
        result.evaluated = _evaluated(result.constraints)
        result.evaluated_contained = tuple(
            c for c in result.evaluated if c.key not in _NOT_CONTAINED
        )
        if "binding" in root:
            result.binding = binding(root["binding"]["strength"], root["binding"]["valueSet"])
        self._fill(result, root["path"])
        if result.is_resource:
            result.elements["resourceType"] = Element(
                "resourceType", root["path"], RESOURCE_TYPE, ""
            )
        return result

    def _backbone(self, path: str) -> Table:
        found = self.backbones.get(path)
        if found is None:
            found = Table(self.name, path)
            self.backbones[path] = found
            self._fill(found, path)
        return found

    def _fill(self, into: Table, path: str) -> None:
        required: list[tuple[str, tuple[str, ...]]] = []
        for definition in self.children[path]:
            keys = self._element(into, definition)
            if definition["min"] >= 1 and keys:
                name = definition["path"].rpartition(".")[2]
                required.append((name, tuple(keys)))
        into.required = tuple(required)

    def _element(self, into: Table, definition: dict[str, Any]) -> list[str]:
        """Adds the properties of one element definition; returns their keys."""
        path = definition["path"]
        name = path.rpartition(".")[2]
        choice = name.endswith("[x]")
        base = name[:-3] if choice else name
        max_ = definition["max"]
        base_max = definition.get("base", max_)
        many = base_max == "*" or int(base_max) > 1
        own = _constraints(definition.get("constraint", []), self.defined)
        keys: list[str] = []
        if "contentReference" in definition:
            types = [{"code": "*", "ref": definition["contentReference"].lstrip("#")}]
        else:
            types = definition.get("type", [])
        for type_ in types:
            code = type_["code"]
            key = _json_name(base, code) if choice else base
            if max_ == "0":
                into.elements[key] = Element(key, path, PROHIBITED, code)
                continue
            element = self._typed(key, path, type_, definition, own)
            element.many = many
            element.min = definition["min"]
            element.max = None if max_ == "*" else int(max_)
            element.choice = base if choice else None
            into.elements[key] = element
            keys.append(key)
            if element.kind == PRIMITIVE and code != "xhtml" and not definition.get("xmlAttr"):
                sibling = Element("_" + key, path, SIBLING, code)
                sibling.table = table("Element")
                sibling.many = many
                sibling.choice = element.choice
                into.elements[sibling.key] = sibling
                keys.append(sibling.key)
        return keys

    def _typed(
        self,
        key: str,
        path: str,
        type_: dict[str, Any],
        definition: dict[str, Any],
        own: tuple[Constraint, ...],
    ) -> Element:
        code = type_["code"]
        if code == "*":  # contentReference: the same shape as an element above
            element = Element(key, path, COMPLEX, "BackboneElement")
            element.table = self._backbone(type_["ref"])
            element.constraints = _merge(own, element.table.constraints)
        elif code in _primitive_types():
            element = Element(key, path, PRIMITIVE, code)
            element.check = checker(code)
            element.constraints = own
        elif code in ("Resource", "DomainResource"):
            element = Element(key, path, RESOURCE, code)
            element.constraints = own
        elif code in ("BackboneElement", "Element") and self.children.get(path):
            element = Element(key, path, COMPLEX, code)
            backbone = self._backbone(path)
            backbone.constraints = own
            backbone.evaluated = _evaluated(own)
            element.table = backbone
            element.constraints = own
        else:
            profiles = [p for p in type_.get("profile", ()) if p in _types()]
            element = Element(key, path, COMPLEX, code)
            element.table = table(profiles[0] if profiles else code)
            element.constraints = _merge(own, element.table.constraints)
        element.evaluated = _evaluated(element.constraints)
        targets = type_.get("targetProfile")
        if code == "Reference" and targets and "Resource" not in targets:
            element.targets = frozenset(targets)
        rule = definition.get("binding")
        if rule is not None and (code in _BOUND_CODES or code in ("Coding", "CodeableConcept")):
            element.binding = binding(rule["strength"], rule["valueSet"])
            if element.binding is not None and rule["strength"] == "required" and code == "code":
                element.code_binding = element.binding.codes
        for field, value in definition.items():
            if field.startswith("fixed"):
                element.fixed = value
            elif field.startswith("pattern"):
                element.pattern = value
        return element


def compile_all() -> list[Table]:
    """Every resource and complex data type's table, compiled now."""
    return [
        table(name)
        for name, definition in _types().items()
        if definition["kind"] in ("resource", "complex-type") and not definition.get("abstract")
    ]


# A FHIRPath expression to a predicate of (focus, %resource, %rootResource).
Invariants = Callable[[str], Callable[[Any, Any, Any], bool]]
