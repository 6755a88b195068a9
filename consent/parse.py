"""FHIR R4 Consent resources (https://hl7.org/fhir/R4/consent.html) as the
engine's ``ConsentPolicy``, or a clear reason why one cannot be interpreted.

Only privacy Consents (scope ``patient-privacy``) are policies; others
(research, treatment, advance directives) are ignored here. Interpreted:
``status``, ``provision.period``, ``provision.type``, ``actor`` (an
Organization by ODS identifier, or by reference resolved to its ODS code by
the caller), ``purpose``, ``class`` (resource types), ``securityLabel``,
``code``, ``dataPeriod``, ``data`` (references) and nested provisions.
``action`` is not: every action is read as access (a deny of "use" denies
access, the protective reading). Anything else that narrows a provision and
that the engine cannot honour makes the Consent uninterpretable: ignoring it
would widen the provision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from consent.model import ConsentPolicy, Provision

PRIVACY_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
_UNDERSTOOD = frozenset(
    {
        "type",
        "period",
        "actor",
        "action",
        "securityLabel",
        "purpose",
        "class",
        "code",
        "dataPeriod",
        "data",
        "provision",
        "id",
        "extension",
    }
)

OrgResolver = Callable[[str], str | None]  # "Organization/<id>" -> ODS code


class Uninterpretable(ValueError):
    """A Consent the engine cannot apply faithfully; the message says why."""


def instant(moment: datetime) -> str:
    """The engine's instant form: UTC, microseconds, fixed width."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def _bound(text: Any, where: str, upper: bool) -> str:
    """A FHIR date or dateTime as an instant: the start of what it covers, or
    (``upper``) the end. A dateTime without a zone is read as UTC."""
    if not isinstance(text, str):
        raise Uninterpretable(f"{where} is not a date")
    try:
        if len(text) == 4:
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            end = datetime(int(text) + 1, 1, 1, tzinfo=UTC)
        elif len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        elif len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            start = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            end = start + timedelta(seconds=1)
    except ValueError:
        raise Uninterpretable(f"{where} {text!r} is not a FHIR date or dateTime") from None
    return instant(end if upper else start)


def _period(value: Any, where: str) -> tuple[str | None, str | None]:
    if value is None:
        return (None, None)
    if not isinstance(value, dict):
        raise Uninterpretable(f"{where} is not a Period")
    low = _bound(value["start"], f"{where}.start", upper=False) if "start" in value else None
    high = _bound(value["end"], f"{where}.end", upper=True) if "end" in value else None
    return (low, high)


def _codings(values: Any, where: str) -> frozenset[tuple[str | None, str]]:
    found = set()
    for index, coding in enumerate(values or []):
        if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
            raise Uninterpretable(f"{where}[{index}] has no code")
        found.add((coding.get("system"), coding["code"]))
    return frozenset(found)


def _concept_codings(values: Any, where: str) -> frozenset[tuple[str | None, str]]:
    found: set[tuple[str | None, str]] = set()
    for index, concept in enumerate(values or []):
        if not isinstance(concept, dict) or not concept.get("coding"):
            raise Uninterpretable(f"{where}[{index}] has no coding to match on")
        found |= _codings(concept["coding"], f"{where}[{index}].coding")
    return frozenset(found)


def _actor(actor: Any, where: str, resolve: OrgResolver) -> str:
    reference = actor.get("reference") if isinstance(actor, dict) else None
    if not isinstance(reference, dict):
        raise Uninterpretable(f"{where} has no reference")
    identifier = reference.get("identifier")
    if isinstance(identifier, dict):
        if identifier.get("system") == ODS_SYSTEM and isinstance(identifier.get("value"), str):
            return str(identifier["value"]).upper()
        raise Uninterpretable(f"{where}: only organisations by ODS code are understood")
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("Organization/"):
        ods = resolve(target)
        if ods is None:
            raise Uninterpretable(f"{where}: {target} cannot be resolved to an ODS code")
        return ods.upper()
    raise Uninterpretable(f"{where}: the actor must be an Organization (by reference or ODS code)")


def _provision(raw: Any, path: str, resolve: OrgResolver, root: bool) -> Provision:
    if not isinstance(raw, dict):
        raise Uninterpretable(f"{path} is not a provision")
    unknown = set(raw) - _UNDERSTOOD
    if unknown:
        raise Uninterpretable(f"{path}: {', '.join(sorted(unknown))} cannot be applied")
    kind = raw.get("type")
    if kind not in ("permit", "deny"):
        if root or kind is not None:
            raise Uninterpretable(f"{path}.type must be permit or deny")
        raise Uninterpretable(f"{path}.type is needed: a nested provision is an exception")
    classes = set()
    for index, coding in enumerate(raw.get("class") or []):
        if not isinstance(coding, dict) or coding.get("system") not in (
            None,
            RESOURCE_TYPES_SYSTEM,
        ):
            raise Uninterpretable(f"{path}.class[{index}] must be a FHIR resource type")
        if not isinstance(coding.get("code"), str):
            raise Uninterpretable(f"{path}.class[{index}] has no code")
        classes.add(coding["code"])
    data = set()
    for index, item in enumerate(raw.get("data") or []):
        reference = (
            (item.get("reference") or {}).get("reference") if isinstance(item, dict) else None
        )
        if not isinstance(reference, str) or reference.count("/") != 1:
            raise Uninterpretable(f"{path}.data[{index}] must reference a resource as Type/id")
        data.add(reference)
    return Provision(
        type=kind,
        path=path,
        period=_period(raw.get("period"), f"{path}.period"),
        actors=frozenset(
            _actor(actor, f"{path}.actor[{i}]", resolve)
            for i, actor in enumerate(raw.get("actor") or [])
        ),
        purposes=frozenset(code for _, code in _codings(raw.get("purpose"), f"{path}.purpose")),
        classes=frozenset(classes),
        labels=_codings(raw.get("securityLabel"), f"{path}.securityLabel"),
        codes=_concept_codings(raw.get("code"), f"{path}.code"),
        data_period=_period(raw.get("dataPeriod"), f"{path}.dataPeriod"),
        data=frozenset(data),
        provisions=tuple(
            _provision(child, f"{path}.provision[{i}]", resolve, root=False)
            for i, child in enumerate(raw.get("provision") or [])
        ),
    )


def is_privacy_consent(resource: dict[str, Any]) -> bool:
    scope = resource.get("scope") or {}
    codings = scope.get("coding") or [] if isinstance(scope, dict) else []
    return any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == PRIVACY_SCOPE for c in codings
    )


def parse_consent(resource: dict[str, Any], resolve: OrgResolver) -> ConsentPolicy:
    """The policy a privacy Consent states; ``Uninterpretable`` says why not."""
    consent_id = str(resource.get("id", ""))
    if not is_privacy_consent(resource):
        raise Uninterpretable("only patient-privacy Consents are policies")
    status = resource.get("status")
    if not isinstance(status, str):
        raise Uninterpretable("Consent.status is missing")
    if "provision" not in resource:
        raise Uninterpretable("Consent.provision is missing: nothing says permit or deny")
    provision = _provision(resource["provision"], "provision", resolve, root=True)
    return ConsentPolicy(
        consent_id=consent_id,
        status=status,
        period=provision.period,
        provision=provision,
    )
