"""The organisation directory: for an ODS code, the organisation's name,
kind and address, read from the Organization resources on file (loaded with
the sources, or from the operator's CSV: ``gateway load --format
organisations``), so it is as current as they are.

Organizations are found by the ODS code the access index keeps for each
(``gateway.access.index.ODS``, a token row of live resources only): one
statement per page of codes, however many are asked for. Where several
live Organizations carry one code, the operator's directory entry answers
(else the one written last that has a name), with the kind and address of
another where it gives none.
An organisation's name is not a person's record: anyone who is shown a code
may be told whose it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway import fhirjson
from gateway.identifiers import ODS_SYSTEM
from gateway.store import Querier, as_bytes
from mappings.directory import DIRECTORY_TAG

# The parameter under which the access index keeps an Organization's ODS
# code (``gateway.access.index.ODS``; a test checks they agree). Named here
# rather than imported: the directory sits below the access layer.
ODS_PARAM = "_access-ods"
# Codes named in one statement: well within SQLite's oldest limit of 999.
PAGE = 500
NOT_IN_DIRECTORY = "organisation not in the directory"
# What a stored resource (compact JSON) names an organisation by: its author
# (``meta.source``) and ODS identifiers, whichever order their keys are in.
_SYSTEM = re.escape(ODS_SYSTEM.encode())
_NAMED = re.compile(
    rb'"source"\s*:\s*"urn:ods:([A-Za-z0-9]+)"'
    rb'|"system"\s*:\s*"' + _SYSTEM + rb'"[^{}]*?"value"\s*:\s*"([A-Za-z0-9]+)"'
    rb'|"value"\s*:\s*"([A-Za-z0-9]+)"[^{}]*?"system"\s*:\s*"' + _SYSTEM + rb'"'
)


@dataclass(frozen=True)
class Organisation:
    """What the directory knows of one organisation."""

    code: str
    name: str
    kind: str = ""  # its words: "GP practice", "Council", ...
    address: str = ""

    @property
    def label(self) -> str:
        """How a reader sees it: ``Primrose Row Surgery (F99C02)``."""
        return f"{self.name} ({self.code})"


def look_up(reader: Querier, codes: Iterable[str]) -> dict[str, Organisation]:
    """The organisations of ``codes`` the directory knows, by code (upper
    case); a code it does not know is absent."""
    wanted = sorted({code.strip().upper() for code in codes if code and code.strip()})
    found: dict[str, Organisation] = {}
    operators: dict[str, bool] = {}  # whether the one found is the operator's entry
    for start in range(0, len(wanted), PAGE):
        page = wanted[start : start + PAGE]
        marks = ", ".join("?" for _ in page)
        rows = reader.select(
            "SELECT t.code, v.content FROM search_token t "
            "JOIN resource_current c ON c.res_type = t.res_type AND c.res_id = t.res_id "
            "JOIN resource_version v ON v.seq = c.seq "
            f"WHERE t.res_type = 'Organization' AND t.param = ? AND t.code IN ({marks}) "
            "AND NOT c.deleted ORDER BY c.seq",
            [ODS_PARAM, *page],
        )
        for code, content in rows:
            if content is None:
                continue
            resource = fhirjson.loads(as_bytes(content))
            organisation = _organisation(str(code), resource)
            if organisation is None:
                continue
            earlier = found.get(organisation.code)
            by_operator = _by_operator(resource)
            if earlier is not None and operators[organisation.code] and not by_operator:
                # The operator's entry stands over a source's record written
                # since; the source's fills only what the entry leaves out.
                organisation, earlier = earlier, organisation
            else:
                operators[organisation.code] = by_operator
            # The last written wins, but a kind or an address it leaves out
            # is taken from another: a practice's own record of itself
            # seldom says that it is a GP practice, the operator's list does.
            if earlier is not None:
                organisation = replace(
                    organisation,
                    kind=organisation.kind or earlier.kind,
                    address=organisation.address or earlier.address,
                )
            found[organisation.code] = organisation
    return found


def _by_operator(resource: dict[str, Any]) -> bool:
    """Whether ``resource`` is the operator's directory entry (``gateway load
    --format organisations``)."""
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(
        isinstance(tag, dict)
        and tag.get("system") == DIRECTORY_TAG["system"]
        and tag.get("code") == DIRECTORY_TAG["code"]
        for tag in tags
    )


def _organisation(code: str, resource: dict[str, Any]) -> Organisation | None:
    name = resource.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    return Organisation(code.upper(), name.strip(), _kind(resource), _address(resource))


def _kind(resource: dict[str, Any]) -> str:
    for concept in resource.get("type") or []:
        if not isinstance(concept, dict):
            continue
        if isinstance(concept.get("text"), str) and concept["text"]:
            return str(concept["text"])
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                return str(coding["display"])
    return ""


def _address(resource: dict[str, Any]) -> str:
    for address in resource.get("address") or []:
        if not isinstance(address, dict):
            continue
        if isinstance(address.get("text"), str) and address["text"]:
            return str(address["text"])
        parts = [str(p) for p in address.get("line") or [] if isinstance(p, str)]
        parts += [
            str(address[k]) for k in ("city", "postalCode") if isinstance(address.get(k), str)
        ]
        if parts:
            return ", ".join(parts)
    return ""


def shown(code: str, known: Mapping[str, Organisation], display: str | None = None) -> str:
    """How a reader sees the organisation of ``code``: its name and code
    from the directory; else the name a record gave with it; else the code
    and that the directory does not know it. Never fails."""
    found = known.get(code.strip().upper())
    if found is not None:
        return found.label
    if display:
        return f"{display} ({code})"
    return f"{code} ({NOT_IN_DIRECTORY})"


def name_of(code: str, known: Mapping[str, Organisation], given: str | None = None) -> str:
    """The name to show beside ``code``: the directory's; else ``given``
    (the name a record or a log entry carried), when it is a name and not
    the code again; else that the directory does not know it."""
    found = known.get(code.strip().upper())
    if found is not None:
        return found.name
    if given and given.strip() and given.strip().upper() != code.strip().upper():
        return given.strip()
    return f"({NOT_IN_DIRECTORY})"


def codes_named_in(contents: Iterable[bytes | None]) -> set[str]:
    """The ODS codes stored resources ``contents`` name (their authors and
    their ODS identifiers), found without parsing them: what a page or a
    document will show, looked up at once beforehand."""
    found: set[str] = set()
    for content in contents:
        if content:
            for match in _NAMED.finditer(content):
                code = next(group for group in match.groups() if group)
                found.add(code.decode().upper())
    return found
