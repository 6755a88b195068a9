"""SMART system scopes: which interactions a token allows on which types.

SMART v2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
``system/Patient.rs``, ``system/*.cruds``, a subset of ``c`` create, ``r``
read, ``u`` update, ``d`` delete, ``s`` search. SMART v1 names are accepted
and read as v2: ``read`` is ``rs``, ``write`` is ``cud``, ``*`` is ``cruds``.
Only ``system/`` scopes exist for backend services; others (``patient/``,
``user/``, ``openid``, ``launch``...) and v2 scopes with query parameters are
refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from conformance.registry import RESOURCES


class Permission(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


_ORDER = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>[a-z*]+)")
ANY_TYPE = "*"


class ScopeError(ValueError):
    """A scope string that is not a SMART system scope this server grants."""


@dataclass(frozen=True)
class Scopes:
    """Permissions by resource type (``*``: every type)."""

    grants: Mapping[str, frozenset[Permission]]

    @classmethod
    def parse(cls, text: str) -> Scopes:
        """Scopes from a space-separated scope string; ``ScopeError`` names
        the first scope that is not a SMART system scope for a type in scope."""
        grants: dict[str, set[Permission]] = {}
        for scope in text.split():
            match = _SCOPE.fullmatch(scope)
            if match is None:
                raise ScopeError(
                    f"{scope!r} is not a SMART system scope (system/Type.cruds or "
                    "system/*.read style); backend services get system scopes only"
                )
            res_type, perms = match["type"], match["perms"]
            if res_type != ANY_TYPE and res_type not in RESOURCES:
                raise ScopeError(f"{scope!r}: {res_type} is not a resource type this server serves")
            letters = _V1.get(perms, perms)
            if not letters or any(
                letter not in _ORDER or letters.count(letter) > 1 for letter in letters
            ):
                raise ScopeError(
                    f"{scope!r}: permissions are a subset of c, r, u, d, s (v2) or "
                    "read, write, * (v1)"
                )
            grants.setdefault(res_type, set()).update(Permission(letter) for letter in letters)
        return cls(MappingProxyType({t: frozenset(p) for t, p in grants.items()}))

    def permissions(self, res_type: str) -> frozenset[Permission]:
        return self.grants.get(res_type, frozenset()) | self.grants.get(ANY_TYPE, frozenset())

    def allows(self, res_type: str, permission: Permission) -> bool:
        return permission in self.permissions(res_type)

    def narrowed_to(self, allowed: Scopes) -> Scopes:
        """What of these scopes ``allowed`` covers: a token gets no more than
        its client's registration, whatever it asks for."""
        grants: dict[str, frozenset[Permission]] = {}
        for res_type, wanted in self.grants.items():
            if res_type == ANY_TYPE:
                # Every type's own grant, plus the registration's wildcard.
                grants_any = wanted & allowed.grants.get(ANY_TYPE, frozenset())
                if grants_any:
                    grants[ANY_TYPE] = grants_any
                for other, perms in allowed.grants.items():
                    if other != ANY_TYPE and wanted & perms:
                        grants[other] = grants.get(other, frozenset()) | (wanted & perms)
            else:
                got = wanted & allowed.permissions(res_type)
                if got:
                    grants[res_type] = grants.get(res_type, frozenset()) | got
        return Scopes(MappingProxyType(grants))

    def types_allowing(self, permission: Permission) -> frozenset[str]:
        """The resource types in scope for which ``permission`` is granted."""
        return frozenset(t for t in RESOURCES if self.allows(t, permission))

    def __bool__(self) -> bool:
        return any(self.grants.values())

    def __str__(self) -> str:
        return " ".join(
            f"system/{res_type}.{''.join(p for p in _ORDER if Permission(p) in perms)}"
            for res_type, perms in sorted(self.grants.items(), key=lambda item: _sort_key(item[0]))
            if perms
        )


def _sort_key(res_type: str) -> tuple[int, str]:
    return (0 if res_type == ANY_TYPE else 1, res_type)
