"""The FHIRPath language as ``conformance.fhirpath`` compiles it: the grammar,
the operators and functions the R4 invariants use, over FHIR JSON.

http://hl7.org/fhirpath/N1/, https://hl7.org/fhir/R4/fhirpath.html
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from conformance import fhirpath
from conformance.fhirpath import (
    FhirPathEvaluationError,
    FhirPathSyntaxError,
    Primitive,
    bundle_resolver,
    narrative_problem,
    typed_stub_resolver,
)
from conformance.fhirpath._parser import Binary, Call, Literal, Member, TypeOp, parse, tokenize

XHTML = "http://www.w3.org/1999/xhtml"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "amara",
    "active": True,
    "birthDate": "1984-03-02",
    "_birthDate": {"extension": [{"url": "http://e.org/time", "valueTime": "08:30:00"}]},
    "name": [
        {"use": "official", "family": "Okafor", "given": ["Amara", "Ngozi"]},
        {"use": "nickname", "given": ["Mara"]},
    ],
    "telecom": [{"system": "phone", "value": "020 7946 0000", "use": "home"}],
    "deceasedBoolean": False,
    "multipleBirthInteger": 2,
    "extension": [
        {"url": "http://e.org/colour", "valueString": "green"},
        {"url": "http://e.org/weight", "valueQuantity": {"value": 70.5, "code": "kg"}},
    ],
}


def ev(expression: str, focus: Any = None, resource: Any = None, **options: Any) -> list[Any]:
    return fhirpath.compile(expression)(PATIENT if focus is None else focus, resource, **options)


# Grammar


def test_tokens_keep_literals_whole() -> None:
    """Dates, times, quantities' units, strings with escapes and delimited
    identifiers are single tokens; comments are dropped."""
    kinds = [
        (t.kind, t.text)
        for t in tokenize("@2020-01-02T10:00:00.5+01:00 @T10:30 'a\\'b' `div` 5.5 'mg' // note")
    ]
    assert kinds == [
        ("datetime", "@2020-01-02T10:00:00.5+01:00"),
        ("time", "@T10:30"),
        ("string", "'a\\'b'"),
        ("ident", "div"),
        ("number", "5.5"),
        ("string", "'mg'"),
        ("eof", ""),
    ]


def test_precedence_follows_the_specification() -> None:
    """``implies`` binds loosest, then or/xor, and, in/contains, equality,
    comparison, union, is/as, additive, multiplicative."""
    tree = parse("a or b and c = d implies e")
    assert isinstance(tree, Binary) and tree.op == "implies"
    left = tree.left
    assert isinstance(left, Binary) and left.op == "or"
    assert isinstance(left.right, Binary) and left.right.op == "and"
    assert isinstance(left.right.right, Binary) and left.right.right.op == "="
    assert parse("1 + 2 * 3") == Binary("+", Literal(1), Binary("*", Literal(2), Literal(3)))
    assert parse("a | b = c") == Binary(
        "=", Binary("|", Member(None, "a"), Member(None, "b")), Member(None, "c")
    )


def test_keywords_are_names_after_a_dot_and_as_functions() -> None:
    assert parse("x.as(canonical)") == Call(Member(None, "x"), "as", (Member(None, "canonical"),))
    assert parse("where(as(uri) = '#')") == Call(
        None, "where", (Binary("=", Call(None, "as", (Member(None, "uri"),)), Literal("#")),)
    )
    assert parse("value is FHIR.Quantity") == TypeOp("is", Member(None, "value"), "FHIR.Quantity")
    assert parse("text.`div`") == Member(Member(None, "text"), "div")


def test_literals() -> None:
    assert ev("'a\\tb\\u0041'") == ["a\tbA"]
    assert ev("1.50") == [Decimal("1.50")]
    assert ev("{}") == []
    assert [str(v) for v in ev("@2020-01")] == ["2020-01"]
    assert [repr(v) for v in ev("5 'mg'")] == ["5 'mg'"]
    assert [repr(v) for v in ev("3 days")] == ["3 'days'"]


@pytest.mark.parametrize(
    "text",
    ["name.", "name(", "1 +", "'open", "a..b", "where(", "@2020-13", "x.nosuch()", "iif(true)"],
)
def test_bad_expressions_are_syntax_errors(text: str) -> None:
    with pytest.raises(FhirPathSyntaxError):
        fhirpath.compile(text)


# Navigation over FHIR JSON


def test_paths_flatten_arrays_and_start_at_the_resource_type() -> None:
    assert ev("name.given") == ["Amara", "Ngozi", "Mara"]
    assert ev("Patient.name.family") == ["Okafor"]
    assert ev("name[1].given") == ["Mara"]
    assert ev("nothing.here") == []


def test_choice_elements_are_found_by_their_name() -> None:
    """``value`` on an Extension finds ``valueString``; ``deceased`` finds
    ``deceasedBoolean``; a name ending in a word that is not a type is not a
    choice (``valueSet``)."""
    assert ev("extension.value") == ["green", {"value": 70.5, "code": "kg"}]
    assert ev("deceased") == [False]
    assert ev("multipleBirth") == [2]
    assert ev("value", {"valueSet": "http://x"}) == []


def test_asking_a_choice_for_a_type_reads_the_typed_property() -> None:
    assert ev("extension.value.ofType(Quantity).value") == [70.5]
    assert ev("extension.value.ofType(string)") == ["green"]
    assert ev("extension[0].value is string") == [True]
    assert ev("extension[1].value is string") == [False]
    assert ev("(extension[1].value as Quantity).code") == ["kg"]


def test_primitives_carry_their_extensions() -> None:
    birth = ev("birthDate")
    assert birth == [Primitive("1984-03-02", PATIENT["_birthDate"])]
    assert ev("birthDate.extension.value") == ["08:30:00"]
    assert ev("birthDate = '1984-03-02'") == [True]
    focus = {"_given": [None, {"id": "g2"}], "given": ["A", None]}
    assert ev("given.count()", focus) == [2]
    assert ev("given.hasValue()", {"_given": [{"id": "g"}]}) == [False]


def test_children_and_descendants() -> None:
    focus = {"code": {"coding": [{"code": "a"}]}, "_status": {"id": "s"}}
    assert ev("children().count()", focus) == [2]
    assert ev("descendants().count()", focus) == [5]  # code, status, coding, code 'a', id 's'


# Logic


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("true and {}", []),
        ("false and {}", [False]),
        ("true or {}", [True]),
        ("false or {}", []),
        ("{} implies false", []),
        ("false implies {}", [True]),
        ("true implies {}", []),
        ("true xor false", [True]),
        ("{} xor true", []),
        ("{}.not()", []),
        ("(1 = 1).not()", [False]),
    ],
)
def test_three_valued_logic(expression: str, result: list[Any]) -> None:
    assert ev(expression) == result


def test_a_single_non_boolean_is_true_and_many_are_an_error() -> None:
    assert ev("name.family and true") == [True]
    with pytest.raises(FhirPathEvaluationError):
        ev("name.given and true")


# Equality, equivalence, ordering


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("1 = 1.0", [True]),
        ("'a' = 'A'", [False]),
        ("'a' ~ ' A '", [True]),
        ("1.2 ~ 1.21", [True]),
        ("{} = 1", []),
        ("{} ~ {}", [True]),
        ("name.given = ('Amara' | 'Ngozi' | 'Mara')", [True]),
        ("name.given = ('Ngozi' | 'Amara' | 'Mara')", [False]),
        ("name.given != ('Amara' | 'Ngozi')", [True]),
        ("telecom = telecom", [True]),
        ("@2020 = @2020-01", []),
        ("@2020-01-01T10:00:00+01:00 = @2020-01-01T09:00:00Z", [True]),
        ("@2020 ~ @2020-01", [False]),
        ("@T10:00 < @T10:30", [True]),
        ("'2019' < '2020-06'", [True]),
        ("'2020' < '2020-06'", []),
        ("'b' > 'a'", [True]),
        ("5 'mg' < 1 'g'", [True]),
        ("5 'mg' < 1 'mL'", []),
        ("2 < 10", [True]),
        ("2.5 >= 2", [True]),
    ],
)
def test_equality_and_ordering(expression: str, result: list[Any]) -> None:
    assert ev(expression) == result


def test_json_decimals_compare_as_decimals() -> None:
    """Decimals may arrive as float or Decimal; both are compared as decimals."""
    assert ev("value = 0.1", {"value": 0.1}) == [True]
    assert ev("value = 0.1", {"value": Decimal("0.1")}) == [True]
    assert ev("value > 0", {"value": Decimal("0.001")}) == [True]
    assert ev("value.toString()", {"value": 1.0}) == ["1.0"]


def test_quantities_from_json_compare_by_unit() -> None:
    low = {"value": 1, "system": "http://unitsofmeasure.org", "code": "g"}
    high = {"value": 900, "system": "http://unitsofmeasure.org", "code": "mg"}
    assert ev("low <= high", {"low": low, "high": high}) == [False]
    assert ev("low <= high", {"low": low, "high": {**high, "value": 1000}}) == [True]


def test_comparing_more_than_one_item_is_an_error() -> None:
    with pytest.raises(FhirPathEvaluationError):
        ev("name.given < 'z'")


# Collections


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("name.given.count()", [3]),
        ("(1 | 2 | 1)", [1, 2]),
        ("(1 | 2).combine(1)", [1, 2, 1]),
        ("(1 | 2 | 3).intersect(2 | 3 | 4)", [2, 3]),
        ("(1 | 2 | 3).exclude(2)", [1, 3]),
        ("(1 | 2 | 3).isDistinct()", [True]),
        ("(1).combine(1).isDistinct()", [False]),
        ("(1).combine(1).distinct()", [1]),
        ("'a' in ('a' | 'b')", [True]),
        ("'c' in {}", [False]),
        ("{} in ('a' | 'b')", []),
        ("('a' | 'b') contains 'b'", [True]),
        ("(1 | 2 | 3).first()", [1]),
        ("(1 | 2 | 3).last()", [3]),
        ("(1 | 2 | 3).tail()", [2, 3]),
        ("(1 | 2 | 3).skip(1).take(1)", [2]),
        ("(1 | 2 | 3).where($this > 1)", [2, 3]),
        ("(1 | 2 | 3).select($this * 2)", [2, 4, 6]),
        ("(1 | 2 | 3).where($index = 1)", [2]),
        ("(1 | 2 | 3).all($this > 0)", [True]),
        ("{}.all(false)", [True]),
        ("(1 | 2).exists($this = 2)", [True]),
        ("(1 | 2).subsetOf(1 | 2 | 3)", [True]),
        ("(true | false).allTrue()", [False]),
        ("(false).allFalse()", [True]),
        ("(1 | 2 | 3).aggregate($total + $this, 0)", [6]),
        ("name.select(given.first())", ["Amara", "Mara"]),
        ("telecom.where(use = 'home').value", ["020 7946 0000"]),
    ],
)
def test_collection_functions(expression: str, result: list[Any]) -> None:
    assert ev(expression) == result


def test_repeat_follows_a_path_to_its_end() -> None:
    tree = {"item": [{"id": "a", "item": [{"id": "b", "item": [{"id": "c"}]}]}]}
    assert ev("repeat(item).id", tree) == ["a", "b", "c"]


# Strings, conversions, arithmetic


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("'Patient/1'.startsWith('Patient')", [True]),
        ("'abc'.endsWith('bc')", [True]),
        ("'a/_history/1'.contains('/_history/')", [True]),
        ("'#abc'.substring(1)", ["abc"]),
        ("'abc'.substring(1, 1)", ["b"]),
        ("'abc'.substring(5)", []),
        ("'abc'.length()", [3]),
        ("'abc'.indexOf('c')", [2]),
        ("'abc'.upper()", ["ABC"]),
        ("'a-b'.replace('-', '+')", ["a+b"]),
        ("'abc'.matches('b')", [True]),
        ("'abc'.matches('^b$')", [False]),
        ("'a1b2'.replaceMatches('[0-9]', 'x')", ["axbx"]),
        ("'a,b'.split(',')", ["a", "b"]),
        ("('a' | 'b').join('-')", ["a-b"]),
        ("{}.startsWith('a')", []),
        ("'5'.toInteger() + 1", [6]),
        ("'x'.toInteger()", []),
        ("'1.5'.toDecimal()", [Decimal("1.5")]),
        ("'true'.toBoolean()", [True]),
        ("'x'.convertsToInteger()", [False]),
        ("1.toString()", ["1"]),
        ("'#' + 'x'", ["#x"]),
        ("'a' & {}", ["a"]),
        ("7 div 2", [3]),
        ("7 mod 2", [1]),
        ("1 / 0", []),
        ("-(2)", [-2]),
        ("(-1.5).abs()", [Decimal("1.5")]),
        ("iif(true, 'y', 'n')", ["y"]),
        ("iif({}, 'y')", []),
    ],
)
def test_string_and_conversion_functions(expression: str, result: list[Any]) -> None:
    assert ev(expression) == result


def test_iif_evaluates_its_criterion_on_its_input() -> None:
    """ctm-1's ``resolve().iif(empty(), true, ...)``: with nothing resolved the
    criterion sees an empty input."""
    assert ev("{}.iif(empty(), 'none', 'some')") == ["none"]
    assert ev("name.first().iif(empty(), 'none', family)") == ["Okafor"]


def test_dates_and_times() -> None:
    today = ev("today()")[0]
    assert len(today.parts) == 3
    assert ev("now() > @2020-01-01T00:00:00Z") == [True]
    assert ev("today() >= @2020-01-01") == [True]
    assert [str(v) for v in ev("@2020-01-31 + 1 month")] == ["2020-02-29"]
    assert [str(v) for v in ev("@2020-03-01 - 1 day")] == ["2020-02-29"]
    assert ev("birthDate < today()") == [True]
    assert ev("timeOfDay() > @T00:00:00.000") in ([True], [False])


# FHIR's functions and variables


def test_environment_variables() -> None:
    contact = PATIENT["telecom"][0]
    assert ev("%resource.id", contact, PATIENT) == ["amara"]
    assert ev("%rootResource.id", contact, PATIENT) == ["amara"]
    assert ev("%context.value", contact, PATIENT) == ["020 7946 0000"]
    assert ev("%ucum") == ["http://unitsofmeasure.org"]
    assert ev("%`vs-administrative-gender`") == [
        "http://hl7.org/fhir/ValueSet/administrative-gender"
    ]
    assert ev("%mine + 1", variables={"mine": 1}) == [2]
    with pytest.raises(FhirPathEvaluationError):
        ev("%unknown")


def test_has_value() -> None:
    assert ev("active.hasValue()") == [True]
    assert ev("name.first().hasValue()") == [False]
    assert ev("birthDate.hasValue()") == [True]
    assert ev("birthDate.hasValue()", {"_birthDate": {"id": "b"}}) == [False]


def test_extension_by_url() -> None:
    assert ev("extension('http://e.org/colour').value") == ["green"]
    assert ev("birthDate.extension('http://e.org/time').exists()") == [True]
    assert ev("extension('http://e.org/none')") == []


def test_type_tests_on_json() -> None:
    """Resources by resourceType; JSON strings as any string-based type, a
    date type only when they read as one; non-resource objects cannot be asked
    for a complex type by name."""
    bundle = {"resourceType": "Bundle", "entry": [{"resource": PATIENT}]}
    assert ev("entry.resource.is(Patient)", bundle) == [True]
    assert ev("entry.resource.is(DomainResource)", bundle) == [True]
    assert ev("is(DomainResource)", bundle) == [False]
    assert ev("entry.resource.ofType(Observation)", bundle) == []
    assert ev("birthDate.is(date)") == [True]
    assert ev("birthDate.is(dateTime)") == [True]
    assert ev("name.family.is(date)") == [False]
    assert ev("name.family.is(uri)") == [True]
    assert ev("active.is(boolean)") == [True]
    assert ev("'a'.is(String)") == [True]
    assert ev("1.is(Integer)") == [True]
    assert ev("descendants().as(canonical).count() > 0") == [True]
    with pytest.raises(FhirPathEvaluationError):
        ev("name.first().is(HumanName)")


def test_resolve_finds_contained_resources_and_the_container() -> None:
    condition = {
        "resourceType": "Condition",
        "contained": [{"resourceType": "Practitioner", "id": "p"}],
        "recorder": {"reference": "#p"},
        "asserter": {"reference": "Practitioner/x"},
    }
    assert ev("recorder.resolve().id", condition) == ["p"]
    assert ev("asserter.resolve()", condition) == []
    assert ev("asserter.resolve() is Practitioner", condition, resolver=typed_stub_resolver) == [
        True
    ]
    inside = condition["contained"][0]
    expression = fhirpath.compile("'#'.resolve().resourceType")
    assert expression(inside, inside, condition) == ["Condition"]


def test_bundle_resolver() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p1"}},
            {
                "fullUrl": "https://x.org/Practitioner/d",
                "resource": {"resourceType": "Practitioner", "id": "d"},
            },
        ],
    }
    resolve = bundle_resolver(bundle)
    assert resolve("urn:uuid:1") == {"resourceType": "Patient", "id": "p1"}
    assert resolve("Practitioner/d") == {"resourceType": "Practitioner", "id": "d"}
    assert resolve("https://y.org/Patient/p1") == {"resourceType": "Patient", "id": "p1"}
    assert resolve("Patient/none") is None


def test_trace_passes_its_input_through_to_a_tracer() -> None:
    seen: list[tuple[str, list[Any]]] = []
    result = ev("name.family.trace('family')", tracer=lambda n, v: seen.append((n, v)))
    assert result == ["Okafor"]
    assert seen == [("family", ["Okafor"])]


def test_member_of_asks_the_value_set_lookup() -> None:
    lookup = {("home", "http://vs"): True}
    assert ev(
        "telecom.use.memberOf('http://vs')", value_sets=lambda code, url: lookup.get((code, url))
    ) == [True]
    with pytest.raises(FhirPathEvaluationError):
        ev("telecom.use.memberOf('http://vs')")


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<p>Amara <b>Okafor</b></p>", None),
        ("<table><tr><td colspan='2'>a&nbsp;b</td></tr></table>", None),
        ('<img src="#photo" alt="p"/>', None),
        ("<script>x</script>", "element script is not allowed in a narrative"),
        ('<p onclick="x()">a</p>', "attribute onclick is not allowed on p"),
        ("<form>a</form>", "element form is not allowed in a narrative"),
        ("  <p> </p>", "the narrative has no non-whitespace content"),
        ("<p>a</b>", "not well-formed XHTML"),
    ],
)
def test_narrative_rules(html: str, problem: str | None) -> None:
    found = narrative_problem(f'<div xmlns="{XHTML}">{html}</div>')
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


def test_narrative_must_be_an_xhtml_div() -> None:
    assert narrative_problem("<div>a</div>") == "the narrative is not an XHTML div"
    assert narrative_problem(f'<p xmlns="{XHTML}">a</p>') == "the narrative is not an XHTML div"
    assert ev("htmlChecks()", f'<div xmlns="{XHTML}">ok</div>') == [True]


# Verdicts


def test_an_invariant_holds_unless_it_is_false() -> None:
    """Empty holds (R4's ref-1 on an identifier-only Reference, per-1 across
    precisions); false fails; more than one item is an evaluation error."""
    assert fhirpath.holds("{}", PATIENT) is True
    assert fhirpath.holds("true", PATIENT) is True
    assert fhirpath.holds("false", PATIENT) is False
    assert fhirpath.holds("name.family", PATIENT) is True
    ref_1 = (
        "reference.startsWith('#').not() or "
        "(reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))"
    )
    assert fhirpath.holds(ref_1, {"identifier": {"value": "1"}}, PATIENT) is True
    assert fhirpath.holds(ref_1, {"reference": "#nothing"}, PATIENT) is False
    per_1 = "start.hasValue().not() or end.hasValue().not() or (start <= end)"
    assert fhirpath.holds(per_1, {"start": "2020", "end": "2020-06"}) is True
    assert fhirpath.holds(per_1, {"start": "2021", "end": "2020-06"}) is False
    with pytest.raises(FhirPathEvaluationError):
        fhirpath.holds("name.given", PATIENT)


def test_results_are_the_callers_to_keep() -> None:
    expression = fhirpath.compile("true")
    first = expression(PATIENT)
    first.append("changed")
    assert expression(PATIENT) == [True]
