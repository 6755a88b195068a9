"""Error kinds become statuses and OperationOutcomes in one place."""

from __future__ import annotations

from gateway import errors, outcomes
from gateway.errors import Issue


def test_every_error_kind_has_a_status() -> None:
    kinds = [
        k
        for k in vars(errors).values()
        if isinstance(k, type)
        and issubclass(k, errors.GatewayError)
        and k is not errors.GatewayError
    ]
    assert {outcomes.status_of(k("x")) for k in kinds} == {
        400,
        401,
        403,
        404,
        405,
        406,
        409,
        410,
        412,
        413,
        414,
        415,
        422,
        429,
        431,
        500,
        503,
    }


def test_an_unmapped_subclass_takes_its_parents_status() -> None:
    class Stale(errors.PreconditionFailed):
        pass

    assert outcomes.status_of(Stale("x")) == 412
    assert outcomes.status_of(errors.GatewayError("x")) == 500


def test_outcome_carries_code_message_and_expressions() -> None:
    error = errors.InvalidRequest(
        "entry 2: bad",
        code="GW-0110",
        issues=[Issue("value", "not a date", ("Patient.birthDate",))],
    )
    body = outcomes.operation_outcome(error)
    assert body == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "details": {"text": "GW-0110: entry 2: bad"},
                "diagnostics": "GW-0110: not a date",
                "expression": ["Patient.birthDate"],
            }
        ],
    }


def test_an_error_without_issues_reports_itself_with_its_kinds_issue_type() -> None:
    body = outcomes.operation_outcome(errors.Gone("Patient/1 was deleted", code="GW-0411"))
    assert body["issue"][0]["code"] == "deleted"
    assert "Patient/1 was deleted" in body["issue"][0]["diagnostics"]


def test_status_lines() -> None:
    assert outcomes.status_line(201) == "201 Created"
    assert outcomes.status_line(599) == "599"
