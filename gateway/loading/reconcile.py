"""How what a source states now is reconciled with what is on file, one
resource at a time: whether it says anything new, which of its statements
are out of date, and what of the stored resource it keeps (a visit's
diagnoses from earlier messages, the labels of a protected visit). The
person, whom every source shares, is merged element by element
(``gateway.loading.person``).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import fhirjson
from gateway.search.extract import date_range
from gateway.store import Querier, StoredVersion
from mappings.ukcore import typed_id


def same(resource: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether ``stored`` already says what ``resource`` does (meta aside)."""
    if stored is None:
        return False
    mine = {k: v for k, v in resource.items() if k != "meta"}
    return orjson.dumps(stored, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        mine, option=orjson.OPT_SORT_KEYS
    )


def _labels(security: Any) -> set[tuple[Any, Any]]:
    return {
        (label.get("system"), label.get("code"))
        for label in security or []
        if isinstance(label, dict)
    }


def with_labels_kept(
    reader: Querier,
    resources: list[dict[str, Any]],
    found: list[StoredVersion | None],
    labels_from: dict[str, str],
) -> list[dict[str, Any]]:
    """``resources``, those whose confidentiality the record leaves unstated
    (``labels_from``) with the labels stored on the resource each is tied
    to added to their own: a visit protected on file stays protected, and
    a diagnosis added to it is protected too."""
    on_file: dict[str, StoredVersion | None] = {
        f"{v.res_type}/{v.res_id}": v for v in found if v is not None
    }
    kept = []
    for resource in resources:
        tied_to = labels_from.get(typed_id(resource))
        if tied_to is None:
            kept.append(resource)
            continue
        if tied_to not in on_file:
            res_type, _, res_id = tied_to.partition("/")
            on_file[tied_to] = reader.read(res_type, res_id)
        version = on_file[tied_to]
        stored: dict[str, Any] = {}
        if version is not None and version.content is not None:
            stored = fhirjson.loads(version.content).get("meta") or {}
        meta = resource.get("meta") or {}
        labels = list(meta.get("security") or [])
        stated = _labels(labels)
        labels += [
            label
            for label in stored.get("security") or []
            if isinstance(label, dict) and (label.get("system"), label.get("code")) not in stated
        ]
        kept.append({**resource, "meta": {**meta, "security": labels}} if labels else resource)
    return kept


def newly_labelled(resource: dict[str, Any], found: StoredVersion | None) -> bool:
    """Whether the source labels ``resource`` in a way its stored version is
    not (a hospital visit protected since): a change, though nothing else
    in it is, or the protection asked for would be ignored. (A label the
    source no longer states is taken off when the record next changes.)"""
    stated = _labels((resource.get("meta") or {}).get("security"))
    if not stated or found is None or found.deleted or found.content is None:
        return False
    stored = fhirjson.loads(found.content).get("meta") or {}
    return not stated <= _labels(stored.get("security"))


def outdated(
    resource: dict[str, Any], stored: dict[str, Any] | None, dated_by: dict[str, str]
) -> bool:
    """Whether ``resource`` states a standing fact as at a date before the
    one its stored version states it as at (``dated_by``, as
    ``Mapped.dated_by``): the later statement stands, whichever came first."""
    element = dated_by.get(typed_id(resource))
    if element is None or stored is None:
        return False
    mine, theirs = resource.get(element), stored.get(element)
    if not (isinstance(mine, str) and isinstance(theirs, str)):
        return False
    try:
        return date_range(mine).low < date_range(theirs).low
    except ValueError:
        return False  # a date on file that cannot be read: the new statement replaces it


def with_what_is_gathered(
    resource: dict[str, Any], stored: dict[str, Any] | None, gathered: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """``resource`` with the items of its gathering list (``gathered``, as
    ``Mapped.gathered``) that are on file and that it does not name kept
    before its own: a visit's diagnoses from earlier messages stay."""
    spec = gathered.get(typed_id(resource))
    if spec is None or stored is None:
        return resource
    element, key = spec
    stated = resource.get(element) or []
    stated_names = {_named(item, key) for item in stated}
    kept = [item for item in stored.get(element) or [] if _named(item, key) not in stated_names]
    if not kept:
        return resource
    return {**resource, element: [*kept, *stated]}


def as_stood(
    resource: dict[str, Any], stored: dict[str, Any], gathered: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """What stands of ``resource`` when a later record of its source stated
    it: the version on file, with the items of its gathering list that
    ``resource`` adds after those on file (a diagnosis that only an update
    replayed late carried stays with the visit its discharge left)."""
    spec = gathered.get(typed_id(resource))
    if spec is None:
        return stored
    element, key = spec
    on_file = stored.get(element) or []
    names = {_named(item, key) for item in on_file}
    added = [item for item in resource.get(element) or [] if _named(item, key) not in names]
    return {**stored, element: [*on_file, *added]} if added else stored


def _named(item: Any, key: str) -> Any:
    """What an item of a gathering list names (a diagnosis, its Condition)."""
    return (item.get(key) or {}).get("reference") if isinstance(item, dict) else None
