"""Restricted-data labels from code lists: which security labels a record
carries because of what it is about (a depression diagnosis is mental health
data, whoever sent it and whatever labels they sent).

The lists are data (``consent/data/restricted-codes.json``, or a file of the
same shape named by ``GATEWAY_RESTRICTED_CODES``). They are process-wide on
purpose: every writer (the API, loaders, mappings) must label alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consent.model import Coding

DEFAULT_LISTS = Path(__file__).parent / "data" / "restricted-codes.json"
# How the lists are read; changed with the reading (2: a code without a
# system is read as every listed system would), so stored data is relabelled.
_RULES = 2


class BadCodeLists(ValueError):
    """A code-list file that cannot be used (the gateway will not start)."""


@dataclass(frozen=True)
class CodeLists:
    """Labels by exact (system, code), and by (system, code prefix) for
    hierarchical code systems such as ICD-10."""

    exact: dict[Coding, frozenset[Coding]]
    prefixes: dict[str, tuple[tuple[str, Coding], ...]]  # system: (prefix, label)...
    # The same, whatever the system, for a code sent without one.
    _by_code: dict[str, frozenset[Coding]] = field(init=False, repr=False, compare=False)
    _any_prefix: tuple[tuple[str, Coding], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, set[Coding]] = {}
        for (_, code), labels in self.exact.items():
            by_code.setdefault(code, set()).update(labels)
        object.__setattr__(self, "_by_code", {c: frozenset(ls) for c, ls in by_code.items()})
        every = {entry for found in self.prefixes.values() for entry in found}
        object.__setattr__(self, "_any_prefix", tuple(sorted(every)))

    @property
    def fingerprint(self) -> str:
        """Names these lists and the rules reading them: stored data labelled
        under another fingerprint is labelled again (``gateway relabel``)."""
        described = {
            "rules": _RULES,
            "exact": sorted([*code, *sorted(labels)] for code, labels in self.exact.items()),
            "prefixes": sorted(
                [system, *entry] for system, found in self.prefixes.items() for entry in found
            ),
        }
        return hashlib.sha256(json.dumps(described, default=list).encode()).hexdigest()[:16]

    def labels_for(self, codings: Iterable[Coding]) -> frozenset[Coding]:
        """The labels that ``codings`` call for. A code without a system is
        read as each listed system would read it: nothing says what it
        means, and a record the lists cover must not pass unlabelled because
        its sender left the system out (too many labels withhold a record
        from some; too few share it with those its person's rules exclude)."""
        found: set[Coding] = set()
        for system, code in codings:
            if system is None:
                found.update(self._by_code.get(code, ()))
                candidates = self._any_prefix
            else:
                found.update(self.exact.get((system, code), ()))
                candidates = self.prefixes.get(system, ())
            if candidates:
                bare = code.replace(".", "").upper()
                found.update(label for prefix, label in candidates if bare.startswith(prefix))
        return frozenset(found)


def parse_code_lists(raw: Any) -> CodeLists:
    """The lists of a file of the shipped file's shape."""
    try:
        systems: dict[str, list[str]] = raw["systems"]
        exact: dict[Coding, set[Coding]] = {}
        prefixes: dict[str, list[tuple[str, Coding]]] = {}
        for entry in raw["lists"]:
            label: Coding = (str(entry["label"]["system"]), str(entry["label"]["code"]))
            for code in entry.get("snomed", {}):
                for system in systems["snomed"]:
                    exact.setdefault((system, str(code)), set()).add(label)
            for prefix in entry.get("icd10", {}):
                for system in systems["icd10"]:
                    bare = str(prefix).replace(".", "").upper()
                    prefixes.setdefault(system, []).append((bare, label))
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadCodeLists(f"restricted code lists: missing or malformed {exc}") from None
    return CodeLists(
        exact={coding: frozenset(labels) for coding, labels in exact.items()},
        prefixes={system: tuple(found) for system, found in prefixes.items()},
    )


def load_code_lists(path: Path | str | None = None) -> CodeLists:
    try:
        raw = json.loads(Path(path or DEFAULT_LISTS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadCodeLists(f"restricted code lists {path}: {exc}") from None
    return parse_code_lists(raw)


_lists: CodeLists | None = None


def code_lists() -> CodeLists:
    """The lists in force (the shipped ones unless ``use_code_lists`` chose others)."""
    global _lists
    if _lists is None:
        _lists = load_code_lists()
    return _lists


def use_code_lists(lists: CodeLists | None) -> None:
    """Put ``lists`` in force for every writer of this process (``None``:
    the shipped lists)."""
    global _lists
    _lists = lists


def labelled(meta_security: Iterable[Any], codings: Iterable[Coding]) -> list[Any] | None:
    """``meta.security`` with the labels ``codings`` call for added to those
    already there (none is ever removed); ``None`` when nothing is added."""
    present = list(meta_security)
    have = {
        (label.get("system"), label.get("code")) for label in present if isinstance(label, dict)
    }
    missing = sorted(code_lists().labels_for(codings) - have, key=lambda c: (c[0] or "", c[1]))
    if not missing:
        return None
    return present + [{"system": system, "code": code} for system, code in missing]
