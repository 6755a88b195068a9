"""Which section each resource goes in, for each document kind."""

from __future__ import annotations

from typing import Any

from gateway.documents.assemble import Gathered, _placed
from gateway.documents.reconcile import Origins, reconcile
from gateway.documents.sections import RED_BAG, SUMMARY, DocumentKind
from gateway.store import StoredVersion

SNOMED = "http://snomed.info/sct"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _gathered(*resources: dict[str, Any]) -> Gathered:
    versions, by_reference = {}, {}
    for n, resource in enumerate(resources):
        resource.setdefault("id", f"r{n}")
        reference = f"{resource['resourceType']}/{resource['id']}"
        by_reference[reference] = resource
        versions[reference] = StoredVersion(
            seq=n,
            res_type=resource["resourceType"],
            res_id=resource["id"],
            version=1,
            last_updated="2026-11-01T00:00:00.000000Z",
            method="PUT",
            content=b"{}",
        )
    return Gathered(versions, by_reference)


def _sections(kind: DocumentKind, gathered: Gathered) -> dict[str, list[str]]:
    """The entries each section lists: a baseline only the newest of each."""
    anyone = Origins(shown=lambda resource: "a source", kind=lambda resource: "")
    listed = {}
    for section, members in _placed(kind, gathered):
        facts = reconcile(members, gathered.resources, anyone, latest_only=section.latest_only)
        if facts:
            listed[section.key] = [reference for fact in facts for reference in fact.members]
    return listed


def _blood_pressure(when: str, rid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": SNOMED, "code": "75367002"}]},
        "effectiveDateTime": when,
    }


def test_each_resource_lands_in_one_section() -> None:
    gathered = _gathered(
        _blood_pressure("2024-01-01", "old"),
        _blood_pressure("2026-10-01", "new"),
        {
            "resourceType": "Flag",
            "id": "dnacpr",
            "status": "active",
            "code": {"coding": [{"system": SNOMED, "code": "304253006"}]},
        },
        {"resourceType": "Flag", "id": "falls", "status": "active", "code": {"text": "Falls"}},
        {
            "resourceType": "EpisodeOfCare",
            "id": "home",
            "status": "active",
            "type": [
                {
                    "coding": [
                        {
                            "system": "urn:london-care-gateway:episode-type",
                            "code": "care-home-residence",
                        }
                    ]
                }
            ],
        },
        {"resourceType": "EpisodeOfCare", "id": "council", "status": "active"},
        {
            "resourceType": "Consent",
            "id": "privacy",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
        },
        {
            "resourceType": "Condition",
            "id": "resolved",
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
        },
        {"resourceType": "Condition", "id": "active"},
    )
    summary = _sections(SUMMARY, gathered)
    assert summary["vital-signs"] == ["Observation/new"]  # the latest of each code
    assert summary["advance-decisions"] == ["Flag/dnacpr"]
    assert summary["alerts"] == ["Flag/falls"]
    assert summary["care-home"] == ["EpisodeOfCare/home"]
    assert summary["social-care"] == ["EpisodeOfCare/council"]
    assert summary["problems"] == ["Condition/active"]
    assert summary["past-problems"] == ["Condition/resolved"]
    placed = [reference for members in summary.values() for reference in members]
    assert "Consent/privacy" not in placed  # the sharing policy is not the record
    assert len(placed) == len(set(placed))

    red_bag = _sections(RED_BAG, gathered)
    assert next(iter(red_bag)) == "advance-decisions"
    assert red_bag["baseline"] == ["Observation/new"]
    assert "past-problems" not in red_bag


def test_every_red_bag_section_is_always_there() -> None:
    """Every part but the latest hospital stay, which is there once the
    person has been in hospital (tests/http/test_hospital_stay.py)."""
    assert [section.key for section in RED_BAG.sections if not section.always] == ["hospital-stay"]
    required = [section.key for section in SUMMARY.sections if section.always]
    assert required == ["allergies", "medications", "problems"]
