"""``Patient/[id]/$summary`` and ``Patient/[id]/$red-bag``: a person's
documents, built for the requester (after IPS's $summary,
https://hl7.org/fhir/uv/ips/OperationDefinition-summary.html).

The operation's parameters, finding the person (by id, or by NHS number at
the type level) and the build itself; what may be seen is decided by the
``visible`` check the caller passes, as on every other path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conformance.validation import validate_resource
from gateway import fhirjson
from gateway.directory import codes_named_in, look_up
from gateway.documents.assemble import Document, build, gather
from gateway.documents.sections import KINDS, DocumentKind
from gateway.errors import InvalidRequest, Issue, NotFound, Unprocessable
from gateway.interactions import search as searches
from gateway.interactions.types import Visible
from gateway.search.query import parse_search
from gateway.store import Store, StoredVersion

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
# ``profile`` (IPS asks for its own profile; these documents have one shape
# each) is accepted and has no effect; ``_format`` picks JSON or HTML.
_PARAMETERS = frozenset({"identifier", "profile", "_format"})


def kind_of(operation: str) -> DocumentKind:
    return KINDS[operation]


def parameters(
    query: Sequence[tuple[str, str]], body: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """The operation's parameters from the URL and, for POST, a Parameters
    body (``identifier`` as a valueIdentifier or a ``system|value`` string)."""
    found = list(query)
    if body is not None:
        if body.get("resourceType") != "Parameters":
            raise InvalidRequest(
                "the body of this operation must be a Parameters resource", code="GW-0450"
            )
        for parameter in body.get("parameter") or []:
            name = parameter.get("name") if isinstance(parameter, dict) else None
            if not isinstance(name, str):
                raise InvalidRequest("every parameter needs a name", code="GW-0450")
            identifier = parameter.get("valueIdentifier")
            if isinstance(identifier, dict):
                found.append(
                    (name, f"{identifier.get('system', '')}|{identifier.get('value', '')}")
                )
                continue
            value = next(
                (v for k, v in parameter.items() if k.startswith("value") and isinstance(v, str)),
                None,
            )
            if value is None:
                raise InvalidRequest(f"parameter {name!r} has no value", code="GW-0450")
            found.append((name, value))
    for name, _ in found:
        if name not in _PARAMETERS:
            raise InvalidRequest(
                f"this operation does not take {name!r} (it takes identifier and _format)",
                code="GW-0451",
                issues=[Issue("not-supported", f"parameter {name!r}", (name,))],
            )
    return found


def identified(store: Store, params: Sequence[tuple[str, str]], visible: Visible) -> StoredVersion:
    """The one Patient the requester may see with the ``identifier`` given
    (an NHS number alone means the NHS number system). A retired record
    (merged into another) gives way to the active one."""
    values = [value for name, value in params if name == "identifier"]
    if len(values) != 1 or not values[0].strip():
        raise InvalidRequest(
            "name the person with one identifier (an NHS number, or system|value)",
            code="GW-0452",
            issues=[Issue("required", "identifier is required at the type level", ("identifier",))],
        )
    value = values[0].strip()
    if "|" not in value:
        value = f"{NHS_NUMBER}|{value}"
    query = parse_search("Patient", [("identifier", value), ("_count", "10")])
    found = searches.search(store, query, visible=visible, includable=_includes_nothing).matches
    if len(found) > 1:
        active = [
            v for v in found if v.content and fhirjson.loads(v.content).get("active") is not False
        ]
        found = active if active else found
    if not found:
        raise NotFound(f"no person is known with identifier {values[0]!r}", code="GW-0453")
    if len(found) > 1:
        raise Unprocessable(
            f"identifier {values[0]!r} names {len(found)} people; ask by Patient id",
            code="GW-0454",
        )
    return found[0]


def document(
    store: Store,
    kind: DocumentKind,
    patient: StoredVersion,
    *,
    visible: Visible,
    readable: Callable[[str], bool],
    base_url: str,
) -> Document:
    """The ``kind`` of document about ``patient``, of what ``visible`` lets
    the requester see and its token lets it read."""
    gathered = gather(store, patient.res_id, visible=visible, readable=readable)
    # Every organisation it names, looked up at once: each reads as a name.
    named = codes_named_in([patient.content, *(v.content for v in gathered.versions.values())])
    organisations = look_up(store, named)
    built = build(kind, patient, gathered, base_url=base_url, organisations=organisations)
    # What the gateway assembles is checked as any write is: a document that
    # is not valid FHIR is the gateway's fault, and is not served.
    problems = validate_resource(built.bundle, "Bundle")
    if problems:
        raise DocumentNotValid(
            f"the {kind.name} document built is not valid FHIR R4: "
            + "; ".join(f"{p.path}: {p.message}" for p in problems[:10])
        )
    return built


class DocumentNotValid(RuntimeError):
    """A document the gateway built fails validation: a fault of the
    gateway's, answered 500 with the issues in the log, never served."""


def _includes_nothing(res_type: str) -> bool:
    """These searches name no ``_include``: nothing is included."""
    return False
