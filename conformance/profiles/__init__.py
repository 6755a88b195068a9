"""UK Core profiles (HL7 FHIR UK Core R4, STU2, version 2.0.1), checked from
constraint tables in the repository.

https://simplifier.net/guide/uk-core-implementation-guide-stu2?version=2.0.1,
https://hl7.org/fhir/R4/profiling.html. UK Core's packages are on no registry
these machines reach, so what its profiles and extensions ask of an instance
is written down as data in ``ukcore/`` (``README.md`` beside this file lists every rule, the
profile page and definition it is from, and what was left out and why):

* ``profiles.json``: per profile, the cardinalities it tightens, its slices
  (discriminator values) and their cardinalities, its required and
  extensible bindings, its invariants, and the NHS number's format;
* ``extensions.json``: every extension of the package, its contexts, value
  types, binding, sub-extensions and how many an element may hold;
* ``valuesets.json``: the codes of the value sets those bind.

They are compiled once (``warm_up``) into checks that visit only what a
profile constrains, plus one walk of the resource for the package's
extensions. The public surface::

    from conformance import profiles

    profiles.check(resource, "Patient", issues)             # meta.profile's claims
    profiles.check(resource, "Patient", issues, profile=url)  # and one asked for
    profiles.supported("Patient")   # ("https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",)
    profiles.validates(url, "Patient")  # R4's Patient or a tabled profile of it

(``check_claims(resource, res_type, issues, profile, extensions)`` is
``check`` for a caller that already knows the resource may claim a profile
and has its extensions from the base validator's walk, as
``conformance.validation`` has.)

``check`` adds ``conformance.issues.ValidationIssue``s carrying the element
path, the rule's key and the profile's canonical URL (``url|version``).
Errors are what the profile requires; warnings are extensible bindings not
met and claims of profiles the tables do not have (a client may claim
profiles the gateway does not know, and is not refused for it); a profile
asked for by ``profile=`` that the tables do not have is an error, as what
was asked cannot be answered. Claims are checked for the resource, its
contained resources and a Bundle's entries.
"""

from __future__ import annotations

from typing import Any

from conformance.issues import ValidationIssue
from conformance.profiles._check import CORE, _resolve
from conformance.profiles._check import check as check_claims
from conformance.profiles._tables import (
    ExtensionDefinition,
    Profile,
    Rule,
    extensions,
    is_nhs_number,
    profiles,
    source,
    value_sets,
)

__all__ = [
    "CORE",
    "ExtensionDefinition",
    "Profile",
    "Rule",
    "check",
    "check_claims",
    "extensions",
    "is_nhs_number",
    "may_claim",
    "profiles",
    "source",
    "supported",
    "validates",
    "warm_up",
]


def check(
    resource: dict[str, Any],
    res_type: str,
    issues: list[ValidationIssue],
    *,
    profile: str | None = None,
    extensions: list[tuple[str, dict[str, Any]]] | None = None,
) -> None:
    """Adds to ``issues`` what the UK Core profiles ``resource`` (a JSON object
    of ``res_type``) claims, and ``profile`` if given, find wrong with it.
    ``extensions``: its extension objects with their paths, as
    ``conformance.validator.validate`` collects them on its walk (see
    ``may_claim``); without them, the resource is walked here to find them."""
    if profile is None and not may_claim(resource, res_type):
        return  # nothing claimed here or inside: the write path's usual case
    check_claims(resource, res_type, issues, profile, extensions)


def may_claim(resource: dict[str, Any], res_type: str) -> bool:
    """Whether ``resource`` may claim a profile, itself or in a resource it
    holds; if not, ``check`` has nothing to do (and a caller need not
    collect its extensions)."""
    meta = resource.get("meta")
    if meta.__class__ is dict and "profile" in meta:
        return True
    return "contained" in resource or res_type == "Bundle"


def supported(res_type: str) -> tuple[str, ...]:
    """The canonical URLs of the profiles of ``res_type`` the gateway
    validates against."""
    return tuple(p.url for p in profiles().values() if p.type == res_type)


def validates(canonical: str, res_type: str) -> bool:
    """Whether the gateway validates a ``res_type`` against the profile
    ``canonical`` (``url`` or ``url|version``): R4's own definition of the
    type, or a profile of it in the tables, in the version tabled."""
    profile, problem = _resolve(canonical, res_type)
    return profile is not None or problem is None


def warm_up() -> None:
    """Compile every table now, so that no request pays for it."""
    value_sets()
    profiles()
    extensions()
