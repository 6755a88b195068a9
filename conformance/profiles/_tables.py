"""UK Core's constraint tables (``ukcore/*.json``) compiled, once, into
checks over FHIR JSON.

A profile's rules name elements by their id in the profile's
StructureDefinition (``Patient.identifier:nhsNumber.value``): the path from
the resource, each step a JSON property, with ``:slice`` where the profile
slices it (the slice's discriminator values are in the profile's
``slices``). The rules of one profile become a tree of ``Step``s, one per
element with a rule or a descendant with one, so that checking a resource
visits only what the profile constrains. Each element is looked up in the R4
tables of ``conformance.validator`` as it is compiled, so a rule naming an
element R4 does not have fails at compile time, not silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

from conformance import fhirpath, validator
from conformance.issues import ValidationIssue

DATA = Path(__file__).resolve().parent / "ukcore"

# Where a value is: a FHIRPath path, or (where its parent is, the JSON
# property, the index in an array or None). Worked out into a path only for
# an issue, so that a value that meets its rules costs no string.
Loc: TypeAlias = "str | tuple[Loc, str, int | None]"

# Check of one value of an element: (value, where it is, the resource
# holding it, the issues to add to).
Check = Callable[[Any, Loc, dict[str, Any], list[ValidationIssue]], None]

_CODED = frozenset({"code", "string", "uri"})


def path_of(loc: Loc) -> str:
    """The FHIRPath path of a ``Loc``; a primitive's ``_given`` is reported
    as ``given``, as the base validator reports it."""
    parts: list[str] = []
    while not isinstance(loc, str):
        parent, key, index = loc
        key = key[1:] if key[0] == "_" else key
        parts.append(f".{key}" if index is None else f".{key}[{index}]")
        loc = parent
    return loc + "".join(reversed(parts))


def is_nhs_number(value: str) -> bool:
    """Ten digits whose tenth is the Modulus 11 check digit of the first nine
    (NHS Data Dictionary, NHS NUMBER: https://www.datadictionary.nhs.uk/attributes/nhs_number.html):
    weights 10 down to 2, the check digit 11 less the sum's remainder by 11,
    0 for 11, and no NHS number where that is 10."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    d = value.encode("ascii")  # the digits' code points: 48 + the digit
    total = 10 * d[0] + 9 * d[1] + 8 * d[2] + 7 * d[3] + 6 * d[4]
    total += 5 * d[5] + 4 * d[6] + 3 * d[7] + 2 * d[8] - 48 * 54  # 54: the weights' sum
    check = (11 - total % 11) % 11
    return check != 10 and check == d[9] - 48


_FORMATS: dict[str, Callable[[str], bool]] = {"nhs-number": is_nhs_number}


@dataclass(frozen=True)
class Rule:
    """One rule as the tables state it, for an issue to name."""

    profile: str  # the profile's canonical URL and version, "url|version"
    key: str  # "Patient.identifier:nhsNumber max", or an invariant's key
    element: str  # the element id, or the extension's URL
    human: str
    severity: str = "error"
    source: str = ""  # where it is published, when not the profile's definition

    def issue(self, loc: Loc, message: str, code: str) -> ValidationIssue:
        return ValidationIssue(
            path_of(loc),
            f"{message} ({self.key}, {self.profile})",
            code,
            severity=self.severity,
            key=self.key,
            profile=self.profile,
        )


class ValueSet:
    """A value set's codes by code system."""

    __slots__ = ("by_system", "codes", "url")

    def __init__(self, url: str, by_system: dict[str, frozenset[str]]) -> None:
        self.url = url
        self.by_system = by_system
        self.codes = frozenset(code for codes in by_system.values() for code in codes)

    def has(self, coding: Any) -> bool | None:
        """Whether a Coding is in it; None when it has no code to judge."""
        if coding.__class__ is not dict:
            return None
        code = coding.get("code")
        if code is None:
            return None
        codes = self.by_system.get(coding.get("system"))  # type: ignore[arg-type]
        return codes is not None and code in codes


@cache
def value_sets() -> dict[str, ValueSet]:
    """The value sets the tables bind whose codes are known."""
    data = json.loads((DATA / "valuesets.json").read_text("utf-8"))
    return {
        url: ValueSet(url, {system: frozenset(codes) for system, codes in entry["codes"].items()})
        for url, entry in data["valueSets"].items()
        if "codes" in entry
    }


def binding_check(rule: Rule, strength: str, value_set: ValueSet, type_code: str) -> Check:
    """A required binding (an error) or an extensible one (a warning, and only
    when codings are given and none is from the value set) on a code, Coding
    or CodeableConcept (https://hl7.org/fhir/R4/terminologies.html#strength)."""
    required = strength == "required"
    message = f"no code from the {strength} value set {value_set.url}"
    codes, has, by_system = value_set.codes, value_set.has, value_set.by_system

    def code(value: Any, loc: Loc, resource: dict[str, Any], out: list[ValidationIssue]) -> None:
        if value.__class__ is str and value not in codes:
            out.append(rule.issue(loc, f"{value!r}: {message}", "code-invalid"))

    def coding(value: Any, loc: Loc, resource: dict[str, Any], out: list[ValidationIssue]) -> None:
        judged = has(value)
        if judged is False or (judged is None and required):
            out.append(rule.issue(loc, message, "code-invalid"))

    def concept(value: Any, loc: Loc, resource: dict[str, Any], out: list[ValidationIssue]) -> None:
        has_codes = False
        codings = value.get("coding") if value.__class__ is dict else None
        if codings.__class__ is list:
            for item in codings:
                if item.__class__ is dict:
                    code = item.get("code")
                    if code is not None:
                        known = by_system.get(item.get("system"))  # type: ignore[arg-type]
                        if known is not None and code in known:
                            return
                        has_codes = True
        if required or has_codes:
            out.append(rule.issue(loc, message, "code-invalid"))

    if type_code in _CODED:
        return code
    return coding if type_code == "Coding" else concept


def _format_check(rule: Rule, name: str) -> Check:
    test = _FORMATS[name]

    def formatted(
        value: Any, loc: Loc, resource: dict[str, Any], out: list[ValidationIssue]
    ) -> None:
        if value.__class__ is not str or not test(value):
            out.append(rule.issue(loc, f"{value!r}: {rule.human}", "value"))

    return formatted


def _constraint_check(rule: Rule, expression: str) -> Check:
    holds = fhirpath.compile(expression).predicate()

    def invariant(
        value: Any, loc: Loc, resource: dict[str, Any], out: list[ValidationIssue]
    ) -> None:
        try:
            verdict = holds(value, resource, resource)
        except fhirpath.FhirPathError as exc:
            out.append(rule.issue(loc, f"could not be evaluated ({exc})", "processing"))
            return
        if not verdict:
            out.append(rule.issue(loc, rule.human, "invariant"))

    return invariant


class Step:
    """An element of a profile under its parent: a JSON property, the slice
    of its values it is about, their cardinality per parent, the checks of
    each value and the steps below it."""

    __slots__ = (
        "checks",
        "children",
        "element",
        "key",
        "match",
        "max",
        "max_rule",
        "min",
        "min_rule",
        "table",
        "type_code",
        "where",
    )

    def __init__(self, element: str, key: str, table: Any, type_code: str) -> None:
        self.element = element  # the element id: Patient.identifier:nhsNumber
        self.key = key  # the JSON property: identifier
        self.table = table  # the R4 table of its values, for the steps below
        self.type_code = type_code
        self.where: Callable[[Any], bool] | None = None
        self.match: tuple[str, str] | None = None  # a one-property discriminator
        self.min = 0
        self.max: int | None = None
        self.min_rule: Rule | None = None
        self.max_rule: Rule | None = None
        self.checks: list[Check] = []
        self.children: list[Step] = []


def _discriminator(values: dict[str, str]) -> Callable[[Any], bool]:
    """A slice's membership: each discriminator path (``system``,
    ``coding.system``) has the fixed value among its values."""
    if len(values) == 1 and "." not in next(iter(values)):
        ((name, wanted),) = values.items()

        def simple(value: Any) -> bool:  # identifier by system, extension by url
            return value.__class__ is dict and value.get(name) == wanted

        return simple
    paths = [(tuple(path.split(".")), fixed) for path, fixed in values.items()]

    def member(value: Any) -> bool:
        for steps, fixed in paths:
            found = [value]
            for step in steps:
                nxt: list[Any] = []
                for item in found:
                    got = item.get(step) if item.__class__ is dict else None
                    if got.__class__ is list:
                        nxt.extend(got)
                    elif got is not None:
                        nxt.append(got)
                found = nxt
            if fixed not in found:
                return False
        return True

    return member


# Runs a profile's steps under one object: (object, where it is, the
# resource, the issues).
Runner = Callable[[dict[str, Any], Loc, dict[str, Any], list[ValidationIssue]], None]


def _runner(steps: list[Step]) -> Runner | None:
    """One function running ``steps`` under an object, written out as
    Python source and compiled once per profile (as ``dataclasses`` writes
    its methods): each element the profile constrains is a dictionary
    lookup, a slice's discriminator an inline comparison, and what a value
    is checked for a call, so that checking a profile costs a few calls
    rather than one per element and slice."""
    if not steps:
        return None
    names: dict[str, Any] = {}
    lines = ["def run(obj, loc, resource, out):"]
    _write_steps(steps, "obj", "loc", 1, lines, names)
    source = "\n".join(lines)
    exec(compile(source, "<conformance.profiles>", "exec"), names)
    run: Runner = names["run"]
    return run


def _write_steps(
    steps: list[Step], obj: str, loc: str, depth: int, lines: list[str], names: dict[str, Any]
) -> None:
    for step in steps:
        _write_step(step, obj, loc, depth, lines, names)


def _write_step(
    step: Step, obj: str, loc: str, depth: int, lines: list[str], names: dict[str, Any]
) -> None:
    n = len(names)
    pad = "    " * depth
    key = repr(step.key)
    counted = f"counted_{n}"
    names[counted] = _counted(step)
    checks = [f"check_{n}_{k}" for k in range(len(step.checks))]
    names.update(zip(checks, step.checks, strict=True))
    raw, values, index, value, at, count = (f"{v}_{n}" for v in ("raw", "vs", "i", "v", "at", "c"))
    lines.append(f"{pad}{raw} = {obj}.get({key})")
    if step.min:
        lines += [f"{pad}if {raw} is None:", f"{pad}    {counted}({loc}, 0, out)"]
    lines += [f"{pad}if {raw} is not None:"]
    pad += "    "
    lines += [
        f"{pad}listed_{n} = {raw}.__class__ is list",
        f"{pad}{values} = {raw} if listed_{n} else ({raw},)",
        f"{pad}{count} = 0",
        f"{pad}for {index}, {value} in enumerate({values}):",
    ]
    pad += "    "
    if step.match is not None:
        prop, wanted = step.match
        lines.append(
            f"{pad}if {value}.__class__ is not dict or {value}.get({prop!r}) != {wanted!r}:"
        )
        lines.append(f"{pad}    continue")
    elif step.where is not None:
        names[f"where_{n}"] = step.where
        lines += [f"{pad}if not where_{n}({value}):", f"{pad}    continue"]
    lines.append(f"{pad}{count} += 1")
    if checks or step.children:
        lines.append(f"{pad}{at} = ({loc}, {key}, {index} if listed_{n} else None)")
        lines += [f"{pad}{check}({value}, {at}, resource, out)" for check in checks]
        if step.children:
            lines.append(f"{pad}if {value}.__class__ is dict:")
            _write_steps(step.children, value, at, depth + 3, lines, names)
    pad = pad[:-4]
    bounds = []
    if step.min:
        bounds.append(f"{count} < {step.min}")
    if step.max is not None:
        bounds.append(f"{count} > {step.max}")
    if bounds:
        lines += [f"{pad}if {' or '.join(bounds)}:", f"{pad}    {counted}({loc}, {count}, out)"]


def _counted(step: Step) -> Callable[[Loc, int, list[ValidationIssue]], None]:
    """The issue of a step's values being too few or too many."""
    key, low, high, min_rule, max_rule = step.key, step.min, step.max, step.min_rule, step.max_rule

    def counted(loc: Loc, count: int, out: list[ValidationIssue]) -> None:
        if count < low:
            assert min_rule is not None
            out.append(min_rule.issue((loc, key, None), min_rule.human, "required"))
        if high is not None and count > high:
            assert max_rule is not None
            message = f"{max_rule.human}, not {count}"
            out.append(max_rule.issue((loc, key, None), message, "structure"))

    return counted


@dataclass
class Profile:
    """One UK Core profile: what the tables say of it and its compiled steps."""

    url: str
    version: str
    type: str
    name: str
    page: str
    definition: str
    rules: list[Rule] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # under the resource
    checks: list[Check] = field(default_factory=list)  # of the resource itself
    run: Runner | None = None  # the steps, compiled

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


def _element_key(segment: str) -> tuple[str, str | None]:
    name, _, slice_name = segment.partition(":")
    return name, slice_name or None


def _compile_profile(entry: dict[str, Any]) -> Profile:
    url = entry["url"]
    profile = Profile(
        url=url,
        version=entry["version"],
        type=entry["type"],
        name=url.rsplit("/", 1)[1],
        page=entry["page"],
        definition=entry["definition"],
        unchecked=list(entry.get("unchecked", ())),
    )
    slices: dict[str, dict[str, str]] = entry.get("slices", {})
    by_id: dict[str, Step] = {}
    for spec in entry["rules"]:
        element = spec["element"]
        kind = next(k for k in ("min", "max", "format", "binding", "constraint") if k in spec)
        key = spec["constraint"]["key"] if kind == "constraint" else f"{element} {kind}"
        severity = spec["constraint"]["severity"] if kind == "constraint" else "error"
        human = spec.get("human") or (
            spec["constraint"]["human"] if kind == "constraint" else _human(kind, element, spec)
        )
        rule = Rule(profile.canonical, key, element, human, severity, spec.get("source", ""))
        if kind == "binding" and spec["binding"]["strength"] == "extensible":
            rule = Rule(profile.canonical, key, element, human, "warning", rule.source)
        profile.rules.append(rule)
        step = _step(profile, element, slices, by_id)
        if kind == "format":
            _add_check(profile, step, _format_check(rule, spec["format"]))
            continue
        if kind == "constraint":
            _add_check(profile, step, _constraint_check(rule, spec["constraint"]["expression"]))
            continue
        if step is None:
            raise ValueError(f"{profile.name}: a {kind} is of an element, not the resource")
        if kind == "min":
            step.min, step.min_rule = spec["min"], rule
        elif kind == "max":
            step.max, step.max_rule = spec["max"], rule
        else:
            binding = spec["binding"]
            value_set = value_sets()[binding["valueSet"]]
            step.checks.append(binding_check(rule, binding["strength"], value_set, step.type_code))
    profile.run = _runner(profile.steps)
    return profile


def _add_check(profile: Profile, step: Step | None, check: Check) -> None:
    if step is None:
        profile.checks.append(check)
    else:
        step.checks.append(check)


def _human(kind: str, element: str, spec: dict[str, Any]) -> str:
    label = element.split(".", 1)[1] if "." in element else element
    if kind == "min":
        return f"{label} is required (min {spec['min']})"
    if kind == "max":
        return f"at most {spec['max']} {label}"
    binding = spec["binding"]
    return f"{label} is bound {binding['strength']} to {binding['valueSet']}"


def _step(
    profile: Profile, element: str, slices: dict[str, dict[str, str]], by_id: dict[str, Step]
) -> Step | None:
    """The step of ``element`` (None for the resource itself), made with
    its ancestors where they are not made yet."""
    segments = element.split(".")
    if segments[0] != profile.type:
        raise ValueError(f"{profile.name}: {element} is not an element of {profile.type}")
    table = validator.table(profile.type)
    siblings = profile.steps
    step: Step | None = None
    for depth in range(1, len(segments)):
        element_id = ".".join(segments[: depth + 1])
        name, slice_name = _element_key(segments[depth])
        found = by_id.get(element_id)
        if found is None:
            definition = table.elements.get(name) if table is not None else None
            if definition is None:
                raise ValueError(f"{profile.name}: {element_id} is not an element of R4")
            found = Step(element_id, name, definition.table, definition.type_code)
            if slice_name is not None:
                if element_id not in slices:
                    raise ValueError(f"{profile.name}: {element_id} has no discriminator")
                discriminator = slices[element_id]
                found.where = _discriminator(discriminator)
                if len(discriminator) == 1 and "." not in next(iter(discriminator)):
                    found.match = next(iter(discriminator.items()))
            by_id[element_id] = found
            siblings.append(found)
        step = found
        table = found.table
        siblings = found.children
    return step


@cache
def profiles() -> dict[str, Profile]:
    """Every profile of the tables, by canonical URL."""
    data = json.loads((DATA / "profiles.json").read_text("utf-8"))
    compiled = (_compile_profile(entry) for entry in data["profiles"])
    return {profile.url: profile for profile in compiled}


@cache
def source() -> dict[str, str]:
    """Which package, version and commit the tables are from."""
    data = json.loads((DATA / "profiles.json").read_text("utf-8"))
    found: dict[str, str] = data["source"]
    return found


def _json_values(types: list[str]) -> frozenset[str]:
    """value[x]'s JSON names for its types: valueCodeableConcept, valueString."""
    return frozenset("value" + t[0].upper() + t[1:] for t in types)


def _value_checks(spec: dict[str, Any], rule: Callable[[str, str, str], Rule]) -> dict[str, Check]:
    """The binding check of each bound value type, by the value's JSON name."""
    binding = spec.get("binding")
    if binding is None:
        return {}
    value_set = value_sets().get(binding["valueSet"])
    if value_set is None:
        return {}  # a value set outside the package: not checked (valuesets.json)
    strength = binding["strength"]
    bound = rule(
        "binding",
        f"bound {strength} to {value_set.url}",
        "error" if strength == "required" else "warning",
    )
    return {
        "value" + t[0].upper() + t[1:]: binding_check(bound, strength, value_set, t)
        for t in spec.get("value", ())
    }


class SubExtension:
    """A sub-extension of a complex extension: its cardinality and value."""

    __slots__ = ("checks", "max", "min", "name", "values")

    def __init__(self, name: str, spec: dict[str, Any], parent: ExtensionDefinition) -> None:
        self.name = name
        self.min: int = spec.get("min", 0)
        self.max: int | None = spec.get("max")
        self.values = _json_values(spec.get("value", []))
        self.checks = _value_checks(
            spec, lambda what, human, severity: parent.rule(f"{name} {what}", human, severity)
        )


class ExtensionDefinition:
    """One extension of the package: where it may be used and what it holds."""

    __slots__ = (
        "checks",
        "contexts",
        "definition",
        "max",
        "name",
        "no_extensions",
        "simple",
        "subs",
        "url",
        "values",
        "version",
    )

    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.name = self.url.rsplit("/", 1)[1]
        self.version: str = spec["version"]
        self.definition: str = spec["definition"]
        self.contexts = frozenset(spec["context"])
        self.max: int | None = spec.get("max")
        # The value[x] types as JSON names; empty for a complex extension.
        self.values = _json_values(spec.get("value", []))
        self.checks = _value_checks(spec, lambda what, human, sev: self.rule(what, human, sev))
        subs = spec.get("extensions")
        self.no_extensions = subs == {}  # Extension.extension max 0
        self.subs = {name: SubExtension(name, sub, self) for name, sub in (subs or {}).items()}
        self.simple = self._simple()

    def _simple(self) -> Callable[[dict[str, Any], str, dict[str, Any], list[Any]], bool] | None:
        """For an extension with one value type, the check of an instance
        that has it (its binding): True when that is all there is to check,
        False to check the instance in full."""
        if len(self.values) != 1:
            return None
        (name,) = self.values
        bound = self.checks.get(name)
        no_extensions = self.no_extensions

        def simple(
            extension: dict[str, Any], at: str, resource: dict[str, Any], out: list[Any]
        ) -> bool:
            value = extension.get(name)
            if value is None:
                return False
            if bound is not None:
                bound(value, (at, name, None), resource, out)
            return not (no_extensions and "extension" in extension)

        return simple

    def rule(self, what: str, human: str, severity: str = "error") -> Rule:
        return Rule(f"{self.url}|{self.version}", f"{self.name} {what}", self.url, human, severity)


@cache
def extensions() -> dict[str, ExtensionDefinition]:
    """Every extension definition of the package, by URL."""
    data = json.loads((DATA / "extensions.json").read_text("utf-8"))
    return {spec["url"]: ExtensionDefinition(spec) for spec in data["extensions"]}
