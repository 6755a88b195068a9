"""Checking a resource against the UK Core profiles it claims or is asked
about: each profile's steps, then every extension of the package used in it
(its context, value, sub-extensions and how many an element may hold)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from conformance import validator
from conformance.issues import ValidationIssue
from conformance.profiles._tables import (
    Check,
    ExtensionDefinition,
    Profile,
    extensions,
    profiles,
)

CORE = "http://hl7.org/fhir/StructureDefinition/"

# The extension objects of a resource, each with its FHIRPath path
# (Patient.identifier[0].extension[0]), as the base validator's walk passes them.
Walked = list[tuple[str, dict[str, Any]]]


def check(
    resource: dict[str, Any],
    res_type: str,
    out: list[ValidationIssue],
    profile: str | None,
    walked: Walked | None,
) -> None:
    """Adds to ``out`` what the profiles ``resource`` claims in ``meta.profile``
    (and ``profile``, when given) find, for it and for each resource inside
    it (contained resources, a Bundle's entries). ``walked``: its extension
    objects with their paths, as the base validator collected them; None to
    find them here."""
    if walked is None:
        walked = walk_extensions(resource, res_type)
    _resource(resource, res_type, res_type, out, profile, walked)
    if "contained" in resource or res_type == "Bundle":
        _inside(resource, res_type, res_type, out, walked)


def _inside(
    resource: dict[str, Any],
    res_type: str,
    path: str,
    out: list[ValidationIssue],
    walked: Walked,
) -> None:
    """The resources ``resource`` holds: contained ones and a Bundle's entries."""
    contained = resource.get("contained")
    if contained.__class__ is list:
        for index, inner in enumerate(contained):
            if inner.__class__ is dict:
                _nested(inner, f"{path}.contained[{index}]", out, walked)
    if res_type == "Bundle":
        entries = resource.get("entry")
        if entries.__class__ is list:
            for index, entry in enumerate(entries):
                inner = entry.get("resource") if entry.__class__ is dict else None
                if inner.__class__ is dict:
                    _nested(inner, f"{path}.entry[{index}].resource", out, walked)


def _nested(
    resource: dict[str, Any], path: str, out: list[ValidationIssue], walked: Walked
) -> None:
    res_type = resource.get("resourceType")
    if res_type.__class__ is not str or res_type not in validator.resource_types():
        return  # the base validator says what is wrong with it
    _resource(resource, res_type, path, out, None, walked)
    _inside(resource, res_type, path, out, walked)


def _resource(
    resource: dict[str, Any],
    res_type: str,
    path: str,
    out: list[ValidationIssue],
    asked: str | None,
    walked: Walked,
) -> None:
    meta = resource.get("meta")
    claims = meta.get("profile") if meta.__class__ is dict else None
    if claims is None and asked is None:
        return
    chosen: list[Profile] = []
    if claims.__class__ is list:
        for index, claim in enumerate(claims):
            if claim.__class__ is str:
                found, problem = _resolve(claim, res_type)
                if found is not None:
                    if found not in chosen:
                        chosen.append(found)
                elif problem is not None:
                    _not_checked(problem, f"{path}.meta.profile[{index}]", False, out)
    if asked is not None:
        found, problem = _resolve(asked, res_type)
        if found is not None:
            if found not in chosen:
                chosen.append(found)
        elif problem is not None:
            _not_checked(problem, path, True, out)
    if not chosen:
        return
    for profile in chosen:
        for check_ in profile.checks:
            check_(resource, path, resource, out)
        if profile.run is not None:
            profile.run(resource, path, resource, out)
    if walked:
        _extensions(res_type, path, walked, resource, out)


def _not_checked(
    problem: tuple[str, str, str | None], path: str, asked: bool, out: list[ValidationIssue]
) -> None:
    """A claim (or a profile asked for) that names no profile of the tables."""
    message, code, canonical = problem
    if code == "not-supported":
        # A client may claim profiles the gateway does not know: a warning.
        # One asked for that it cannot check is an error: the answer asked
        # for cannot be given.
        message += ": cannot be checked" if asked else ": not checked"
        severity = "error" if asked else "warning"
        out.append(ValidationIssue(path, message, code, severity=severity, profile=canonical))
    else:
        out.append(ValidationIssue(path, message, code, profile=canonical))


@lru_cache(maxsize=1024)
def _resolve(
    claim: str, res_type: str
) -> tuple[Profile | None, tuple[str, str, str | None] | None]:
    """The profile a claim names, or what is wrong with the claim (message,
    issue type, the profile's canonical); (None, None) for R4's own
    definition of ``res_type``."""
    url, _, version = claim.partition("|")
    if url == CORE + res_type:
        return None, None
    if url.startswith(CORE) and url[len(CORE) :] in validator.resource_types():
        return None, (f"claims the base profile of {url[len(CORE) :]}", "invalid", None)
    profile = profiles().get(url)
    if profile is not None and profile.type != res_type:
        message = f"claims {url}, a profile of {profile.type}, not {res_type}"
        return None, (message, "invalid", profile.canonical)
    if profile is None or (version and version != profile.version):
        known = f" (of it, version {profile.version} only)" if profile is not None else ""
        message = f"the profile {claim} is not one the gateway validates against{known}"
        return None, (message, "not-supported", claim)
    return profile, None


# Extensions ------------------------------------------------------------------

_INDEX = re.compile(r"\[[0-9]+\]")


def walk_extensions(resource: dict[str, Any], path: str) -> Walked:
    """Every extension object in ``resource`` with its path, as the base
    validator's walk collects them (``conformance.validator.validate``'s
    ``extensions``), for a caller that has not walked it."""
    found: Walked = []
    _scan(resource, path, found)
    return found


def _scan(node: dict[str, Any], path: str, found: Walked) -> None:
    for key, value in node.items():
        cls = value.__class__
        name = key[1:] if key[0] == "_" else key
        if cls is dict:
            _scan(value, f"{path}.{name}", found)
        elif cls is list:
            for index, item in enumerate(value):
                if item.__class__ is dict:
                    at = f"{path}.{name}[{index}]"
                    if key == "extension" or key == "modifierExtension":
                        found.append((at, item))
                    _scan(item, at, found)


def _extensions(
    res_type: str, path: str, walked: Walked, resource: dict[str, Any], out: list[ValidationIssue]
) -> None:
    """The package's extensions among those walked in the resource at
    ``path`` (not in the resources it holds): where each is, what it holds,
    and how many of each an element has."""
    known = extensions()
    own = path + "."
    inner: tuple[str, ...] = ()
    if "contained" in resource:
        inner = (f"{path}.contained[",)
    if res_type == "Bundle":
        inner = (*inner, f"{path}.entry[")
    counts: dict[tuple[str, str], int] | None = None
    for at, extension in walked:
        definition = known.get(extension.get("url"))  # type: ignore[arg-type]
        if definition is None or not at.startswith(own) or (inner and at.startswith(inner)):
            continue
        if not _placed(definition.url, res_type, at[len(path) :]):
            _misplaced(definition, res_type, at, path, out)
        if definition.max is not None:
            counts = counts if counts is not None else {}
            group = (definition.url, at.rpartition("[")[0])
            counts[group] = counts.get(group, 0) + 1
        if definition.simple is None or not definition.simple(extension, at, resource, out):
            _complex(definition, extension, at, out)
    if counts is not None:
        for (url, array), count in counts.items():
            definition = known[url]
            assert definition.max is not None
            if count > definition.max:
                rule = definition.rule("max", f"at most {definition.max} on an element")
                message = f"{definition.name}: {rule.human}, not {count}"
                out.append(rule.issue(array, message, "structure"))


@lru_cache(maxsize=4096)
def _placed(url: str, res_type: str, below: str) -> bool:
    """Whether the extension at ``below`` (its path below the resource's:
    ``.identifier[0].extension[0]``) is in one of its contexts and not a
    modifier extension. Cached: the same places come up resource after
    resource."""
    holder, _, last = below.rpartition(".")
    return not last.startswith("modifierExtension") and _context(url, res_type, holder) is not False


def _misplaced(
    definition: ExtensionDefinition,
    res_type: str,
    at: str,
    path: str,
    out: list[ValidationIssue],
) -> None:
    """An extension used where its definition does not allow it, or as a
    modifier extension, which none of the package's is."""
    holder, _, last = at[len(path) :].rpartition(".")
    if _context(definition.url, res_type, holder) is False:
        names = ", ".join(sorted(definition.contexts))
        rule = definition.rule("context", f"may be used on {names} only")
        out.append(rule.issue(at, f"{definition.name} is not allowed here", "structure"))
    if last.startswith("modifierExtension"):
        rule = definition.rule("modifier", "is not a modifier extension")
        out.append(rule.issue(at, f"{definition.name} {rule.human}", "structure"))


@lru_cache(maxsize=4096)
def _context(url: str, res_type: str, holder: str) -> bool | None:
    """Whether the holder (its path below the resource: ``.identifier[0]``,
    or empty for the resource) is one of the extension's contexts: by its
    path from the resource (``Patient.identifier``), its path in the type
    that defines it (``ContactPoint.system``) or its type (``Coding``); None
    when the holder cannot be told (the base validator reports what is wrong
    with it)."""
    contexts = extensions()[url].contexts
    if not holder:
        return res_type in contexts or "Resource" in contexts or "DomainResource" in contexts
    names = _INDEX.sub("", holder)
    if res_type + names in contexts or "Element" in contexts:
        return True
    table: Any = validator.table(res_type)
    element: Any = None
    for name in names[1:].split("."):
        if table is None:
            return None
        element = table.elements.get(name)
        if element is None:
            return None
        table = element.table
    return element.path.removesuffix("[x]") in contexts or element.type_code in contexts


def _complex(
    definition: ExtensionDefinition, extension: dict[str, Any], at: str, out: list[ValidationIssue]
) -> None:
    """An extension's value or sub-extensions against its definition: for a
    complex extension, and for a simple one whose value is not of a type it
    allows or that has sub-extensions it may not."""
    if definition.values:
        if not any(name in extension for name in definition.values):
            _value(definition, definition.values, definition.checks, extension, at, out)
        if definition.no_extensions and "extension" in extension:
            rule = definition.rule("extension", "has no sub-extensions")
            message = f"{definition.name} {rule.human}"
            out.append(rule.issue(f"{at}.extension", message, "structure"))
        return
    given = next((name for name in extension if name.startswith("value")), None)
    if given is not None:
        rule = definition.rule("value", "is a complex extension, with no value[x]")
        out.append(rule.issue(f"{at}.{given}", f"{definition.name} {rule.human}", "structure"))
    subs = extension.get("extension")
    counts: dict[str, int] = {}
    for number, item in enumerate(subs if subs.__class__ is list else ()):
        sub = definition.subs.get(item.get("url")) if item.__class__ is dict else None
        if sub is None:
            continue
        counts[sub.name] = counts.get(sub.name, 0) + 1
        where = f"{at}.extension[{number}]"
        _value(definition, sub.values, sub.checks, item, where, out, sub.name)
    for sub in definition.subs.values():
        count = counts.get(sub.name, 0)
        if count < sub.min:
            rule = definition.rule(f"{sub.name} min", f"needs its sub-extension {sub.name!r}")
            message = f"{definition.name} {rule.human}"
            out.append(rule.issue(f"{at}.extension", message, "required"))
        if sub.max is not None and count > sub.max:
            rule = definition.rule(f"{sub.name} max", f"at most {sub.max} {sub.name!r}")
            message = f"{definition.name}: {rule.human}, not {count}"
            out.append(rule.issue(f"{at}.extension", message, "structure"))


def _value(
    definition: ExtensionDefinition,
    allowed: frozenset[str],
    checks: dict[str, Check],
    extension: dict[str, Any],
    at: str,
    out: list[ValidationIssue],
    sub: str = "",
) -> None:
    """The value of an extension or sub-extension: there, of a type its
    definition allows, and from the value set it is bound to."""
    for name in allowed:
        if name in extension:
            check_ = checks.get(name)
            if check_ is not None:
                check_(extension[name], f"{at}.{name}", extension, out)
            return
    what = f"{definition.name} {sub}".rstrip()
    label = f"{sub} value" if sub else "value"
    types = " or ".join(sorted(allowed))
    given = next((name for name in extension if name.startswith("value")), None)
    if given is None:
        rule = definition.rule(f"{label} min", f"has a value ({types})")
        out.append(rule.issue(at, f"{what} {rule.human}", "required"))
    else:
        rule = definition.rule(f"{label} type", f"has a value of type {types}")
        message = f"{what} {rule.human}, not {given}"
        out.append(rule.issue(f"{at}.{given}", message, "structure"))
