"""Content negotiation and Prefer: https://hl7.org/fhir/R4/http.html#mime-type"""

from __future__ import annotations

import pytest

from gateway.errors import NotAcceptable, UnsupportedMediaType
from gateway.http.negotiation import (
    check_acceptable,
    check_content_type,
    parse_prefer,
    return_preference,
)
from gateway.interactions.types import ReturnPreference


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "application/fhir+json",
        "application/json",
        "application/fhir+json; fhirVersion=4.0",
        "*/*",
        "text/html, application/*;q=0.8",
        "application/fhir+xml;q=1, application/fhir+json;q=0.5",
    ],
)
def test_json_or_anything_is_acceptable(accept: str | None) -> None:
    check_acceptable(accept, None)


@pytest.mark.parametrize(
    "accept", ["application/fhir+xml", "application/xml", "text/turtle", "application/json;q=0"]
)
def test_only_other_formats_are_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        check_acceptable(accept, None)


def test_format_parameter_overrides_accept() -> None:
    check_acceptable("application/fhir+xml", "json")
    check_acceptable(None, "application/fhir+json")
    with pytest.raises(NotAcceptable):
        check_acceptable("application/fhir+json", "xml")


@pytest.mark.parametrize(
    "content_type", [None, "", "application/fhir+xml", "text/plain", "application/x-www-form"]
)
def test_bodies_must_be_json(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_content_type(content_type)


def test_json_bodies_with_parameters_are_accepted() -> None:
    check_content_type("application/fhir+json; charset=utf-8")
    check_content_type("Application/JSON")


def test_prefer_parses_several_preferences_and_keeps_the_first_of_each() -> None:
    assert parse_prefer('return=minimal, handling="lenient"; return=representation') == {
        "return": "minimal",
        "handling": "lenient",
    }
    assert parse_prefer(None) == {}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ReturnPreference.REPRESENTATION),
        ("return=minimal", ReturnPreference.MINIMAL),
        ("return=operationoutcome", ReturnPreference.OPERATION_OUTCOME),
        ("return=OperationOutcome", ReturnPreference.OPERATION_OUTCOME),
        ("return=nonsense", ReturnPreference.REPRESENTATION),
        ("handling=strict", ReturnPreference.REPRESENTATION),
    ],
)
def test_return_preference(header: str | None, expected: ReturnPreference) -> None:
    assert return_preference(header) is expected
