"""The national and HL7 code lists the mappings' coded values come from, as
versioned data, so that a reader is shown words with every code.

Each list is one JSON file beside this module: its name, title, the code
system its codes are coded in, the version and date of the publication it
follows, what that publication is and where it was read, and its rows (code
and display). The rows are copied from that publication, never written from
memory; a code that could not be confirmed is left out.

``display`` gives a code's words; ``CodeList.concept`` and ``CodeList.coding``
build the FHIR elements. A code a list does not hold (a local code, or one a
later edition added) is not an error and is kept as it came: its coding has
no display, and the CodeableConcept's text says the code is not in the list
and which version of the list was looked in. A display is never made up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

_TEXT_FIELDS = ("name", "title", "subject", "system", "version", "date", "source")


class BadCodeList(ValueError):
    """A code-list file that is not one: a field missing or empty, a code
    without words, or a code twice."""


@dataclass(frozen=True)
class CodeList:
    """One code list as its file states it."""

    name: str  # the file's name without ``.json``
    title: str  # the list as its publisher names it
    subject: str  # what one of its codes says ("Admission method")
    system: str  # the FHIR code system its codes are coded in
    version: str  # of the publication followed
    date: str  # of that version
    source: str  # what the rows were copied from
    references: tuple[str, ...]  # where that was read
    displays: Mapping[str, str]  # code: display, in the list's order

    def display(self, code: str) -> str | None:
        """The words for ``code``, or ``None`` when the list lacks it."""
        return self.displays.get(code.strip())

    def coding(self, code: str) -> dict[str, str]:
        """A Coding of ``code`` in the list's system; with its display only
        when the list holds the code."""
        code = code.strip()
        coding = {"system": self.system, "code": code}
        if (display := self.display(code)) is not None:
            coding["display"] = display
        return coding

    def concept(self, code: str, words: str = "") -> dict[str, Any]:
        """A CodeableConcept of ``code``: its text the list's display; for a
        code the list lacks, a note saying so after the sender's ``words``
        (when it sent any)."""
        display = self.display(code)
        if display is not None:
            text = display
        else:
            text = self.not_listed(code)
            if words.strip():
                text = f"{words.strip()} ({text})"
        return {"coding": [self.coding(code)], "text": text}

    def not_listed(self, code: str) -> str:
        """What a reader is told of a code the list lacks."""
        return (
            f"{self.subject} code {code.strip()}: not in the {self.title} list, "
            f"version {self.version}"
        )


def names() -> tuple[str, ...]:
    """The name of every list held."""
    return tuple(
        sorted(
            entry.name.removesuffix(".json")
            for entry in files(__name__).iterdir()
            if entry.name.endswith(".json")
        )
    )


@cache
def code_list(name: str) -> CodeList:
    """The list ``name`` (``admission-method``, ``ethnic-category``...), read
    once."""
    resource = files(__name__).joinpath(f"{name}.json")
    if not resource.is_file():
        raise KeyError(f"no code list named {name!r}")
    return parse(json.loads(resource.read_text("utf-8")), name)


def display(name: str, code: str) -> str | None:
    """The words list ``name`` gives ``code``, or ``None`` when it has none."""
    return code_list(name).display(code)


def parse(raw: Any, name: str) -> CodeList:
    """A list file's content as a ``CodeList``, or ``BadCodeList`` saying
    what is wrong with it."""
    if not isinstance(raw, dict):
        raise BadCodeList(f"{name}: not a JSON object")
    for field in _TEXT_FIELDS:
        if not isinstance(raw.get(field), str) or not raw[field].strip():
            raise BadCodeList(f"{name}: {field!r} is missing or empty")
    if raw["name"] != name:
        raise BadCodeList(f"{name}: the file names itself {raw['name']!r}")
    references = raw.get("references")
    if not isinstance(references, list) or not all(
        isinstance(r, str) and r.startswith("https://") for r in references
    ):
        raise BadCodeList(f"{name}: 'references' must be a list of https addresses")
    rows = raw.get("codes")
    if not isinstance(rows, list) or not rows:
        raise BadCodeList(f"{name}: 'codes' must be a list of rows")
    displays: dict[str, str] = {}
    for index, row in enumerate(rows):
        code = row.get("code") if isinstance(row, dict) else None
        words = row.get("display") if isinstance(row, dict) else None
        if not isinstance(code, str) or not code.strip() or code != code.strip():
            raise BadCodeList(f"{name}: row {index} has no code, or spaces around it")
        if not isinstance(words, str) or not words.strip():
            raise BadCodeList(f"{name}: code {code} has no display")
        if code in displays:
            raise BadCodeList(f"{name}: code {code} is listed twice")
        displays[code] = words
    return CodeList(
        name=name,
        title=raw["title"],
        subject=raw["subject"],
        system=raw["system"],
        version=raw["version"],
        date=raw["date"],
        source=raw["source"],
        references=tuple(references),
        displays=MappingProxyType(displays),
    )
