"""``POST [base]/$access-check``: what an organisation would see of a
person's record, and why, for auditors and for testing policy.

The answer names rules, Consents and counts, never the data itself: for a
whole record, how many resources of each type would be shown or withheld and
by which rule; for one resource the caller names, its decision. The same
engine and the same facts decide as for a real request
(``gateway.access.control``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from consent.model import Decision, Requester
from consent.parse import ODS_SYSTEM
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.facts import person_of
from gateway.auth.clients import ClientRegistry, OrgKind
from gateway.auth.tokens import Purpose
from gateway.errors import InvalidRequest, Issue, NotFound, PreconditionFailed
from gateway.interactions.everything import everything_query
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.matching import matching_ids
from gateway.search.paging import scan
from gateway.store import Store, StoredVersion

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


@dataclass(frozen=True)
class AccessQuestion:
    patient_id: str
    requester: Requester
    resource: tuple[str, str] | None  # (type, id)


def _bad(message: str, name: str) -> InvalidRequest:
    return InvalidRequest(
        f"$access-check: {message}",
        code="GW-0332",
        issues=[Issue("value", f"$access-check: {message}", (f"Parameters.parameter({name})",))],
    )


def _parameters(body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _bad("the body must be a Parameters resource", "")
    found: dict[str, dict[str, Any]] = {}
    for parameter in body.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str):
            raise _bad("every parameter needs a name", "")
        if name in found:
            raise _bad(f"{name!r} is given more than once", name)
        found[name] = parameter
    return found


def _value(parameters: dict[str, dict[str, Any]], name: str, *kinds: str) -> tuple[str, Any]:
    parameter = parameters.get(name)
    if parameter is None:
        return "", None
    for kind in kinds:
        if f"value{kind}" in parameter:
            return kind, parameter[f"value{kind}"]
    raise _bad(f"{name!r} takes value{' or value'.join(kinds)}", name)


def _patient_id(store: Store, parameters: dict[str, dict[str, Any]]) -> str:
    kind, value = _value(parameters, "patient", "Reference", "Identifier")
    if kind == "Reference" and isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    if kind == "Identifier" and isinstance(value, dict):
        system, number = value.get("system", NHS_NUMBER), value.get("value")
        if isinstance(number, str):
            ids = matching_ids(store, "Patient", f"identifier={system}|{number}", visible=None)
            if not ids:
                raise NotFound(f"no Patient has the identifier {system}|{number}", code="GW-0410")
            if len(ids) > 1:
                raise PreconditionFailed(
                    f"more than one Patient has the identifier {system}|{number}", code="GW-0413"
                )
            return ids[0]
    raise _bad(
        "'patient' must be a Reference to Patient/[id] or an Identifier (NHS number)", "patient"
    )


def _requester(store: Store, parameters: dict[str, dict[str, Any]]) -> Requester:
    kind, value = _value(parameters, "organization", "Identifier", "String")
    ods = value.get("value") if kind == "Identifier" and isinstance(value, dict) else value
    if kind == "Identifier" and isinstance(value, dict) and value.get("system") != ODS_SYSTEM:
        raise _bad(
            f"'organization' must be identified by its ODS code ({ODS_SYSTEM})", "organization"
        )
    if not isinstance(ods, str) or not ods.strip():
        raise _bad("'organization' (its ODS code) is required", "organization")
    ods = ods.strip().upper()
    _, org_kind = _value(parameters, "kind", "Code")
    if org_kind is None:  # the kind its registered clients have
        kinds = {c.kind.value for c in ClientRegistry(store).all() if c.org_ods == ods}
        if len(kinds) != 1:
            raise _bad(
                f"'kind' is required: {ods} has {'no' if not kinds else 'more than one'} "
                "registered kind",
                "kind",
            )
        org_kind = kinds.pop()
    if org_kind not in {k.value for k in OrgKind}:
        raise _bad(f"'kind' must be one of {', '.join(k.value for k in OrgKind)}", "kind")
    _, purpose = _value(parameters, "purpose", "Code")
    purpose = purpose or Purpose.TREAT.value
    if purpose not in {p.value for p in Purpose}:
        raise _bad(f"'purpose' must be one of {', '.join(p.value for p in Purpose)}", "purpose")
    return Requester(org_ods=ods, kind=org_kind, purpose=purpose)


def parse_question(store: Store, body: Any) -> AccessQuestion:
    parameters = _parameters(body)
    unknown = set(parameters) - {"patient", "organization", "kind", "purpose", "resource"}
    if unknown:
        raise _bad(f"unknown parameter {sorted(unknown)[0]!r}", sorted(unknown)[0])
    resource = None
    kind, value = _value(parameters, "resource", "Reference")
    if kind:
        reference = value.get("reference") if isinstance(value, dict) else None
        res_type, _, res_id = str(reference or "").partition("/")
        if not res_type or not res_id or "/" in res_id:
            raise _bad("'resource' must be a Reference of the form [type]/[id]", "resource")
        resource = (res_type, res_id)
    return AccessQuestion(_patient_id(store, parameters), _requester(store, parameters), resource)


def _decision_parts(decision: Decision) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"name": "permit", "valueBoolean": decision.permit},
        {"name": "rule", "valueCode": decision.rule},
    ]
    if decision.consent_id:
        parts.append(
            {"name": "consent", "valueReference": {"reference": f"Consent/{decision.consent_id}"}}
        )
        parts.append({"name": "provision", "valueString": decision.provision or ""})
    parts.append({"name": "explanation", "valueString": decision.explain()})
    return parts


def _record(store: Store, patient_id: str) -> list[StoredVersion]:
    """Every live resource of the person's record (the Patient and its compartment)."""
    query = everything_query(patient_id, [], base_url="", within=PATIENT_COMPARTMENT)
    return list(scan(store, query, lambda version: True))


def access_check(store: Store, question: AccessQuestion) -> dict[str, Any]:
    """The answer, as a Parameters resource."""
    patient = store.read("Patient", question.patient_id)
    if patient is None or patient.deleted:
        raise NotFound(f"Patient/{question.patient_id} is not known", code="GW-0410")
    control = AccessControl(store, question.requester)
    person = control.person(question.patient_id)
    asked = question.requester
    answer: list[dict[str, Any]] = [
        {"name": "organization", "valueIdentifier": {"system": ODS_SYSTEM, "value": asked.org_ods}},
        {"name": "kind", "valueCode": asked.kind},
        {"name": "purpose", "valueCode": asked.purpose},
        {"name": "relationship", "valueBoolean": asked.org_ods in person.relationships},
    ]
    for consent in person.consents:
        answer.append(
            {
                "name": "consent",
                "part": [
                    {
                        "name": "reference",
                        "valueReference": {"reference": f"Consent/{consent.consent_id}"},
                    },
                    {"name": "status", "valueCode": consent.status},
                ],
            }
        )
    for consent_id in person.uninterpretable:
        answer.append(
            {
                "name": "uninterpretableConsent",
                "valueReference": {"reference": f"Consent/{consent_id}"},
            }
        )
    if question.resource is not None:
        res_type, res_id = question.resource
        found = store.read(res_type, res_id)
        if found is None or found.content is None:
            raise NotFound(f"{res_type}/{res_id} is not known", code="GW-0410")
        if person_of(fhirjson.loads(found.content)) != question.patient_id:
            raise _bad(f"{res_type}/{res_id} is not part of this person's record", "resource")
        answer.append({"name": "decision", "part": _decision_parts(control.decide(found))})
        return {"resourceType": "Parameters", "parameter": answer}
    shown: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    reasons: Counter[tuple[str, str, bool, str | None]] = Counter()
    for version in _record(store, question.patient_id):
        decision = control.decide(version)
        (shown if decision.permit else withheld)[version.res_type] += 1
        reasons[(version.res_type, decision.rule, decision.permit, decision.consent_id)] += 1
    for res_type in sorted(set(shown) | set(withheld)):
        parts: list[dict[str, Any]] = [
            {"name": "type", "valueCode": res_type},
            {"name": "shown", "valueInteger": shown[res_type]},
            {"name": "withheld", "valueInteger": withheld[res_type]},
        ]
        for (of_type, rule, permit, deciding), count in sorted(
            reasons.items(), key=lambda item: (item[0][1], item[0][3] or "")
        ):
            if of_type != res_type:
                continue
            reason = [
                {"name": "rule", "valueCode": rule},
                {"name": "permit", "valueBoolean": permit},
                {"name": "count", "valueInteger": count},
            ]
            if deciding:
                reason.append(
                    {"name": "consent", "valueReference": {"reference": f"Consent/{deciding}"}}
                )
            parts.append({"name": "reason", "part": reason})
        answer.append({"name": "type", "part": parts})
    return {"resourceType": "Parameters", "parameter": answer}
