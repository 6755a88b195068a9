"""The printable page of a document: one standalone HTML5 string that puts
the person and "Not for attempted CPR" first, keeps every section in the
Composition's order, prints on A4 and reads on a phone, and shows a stored
narrative only through the narrative whitelist."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gateway.documents.html import render, safe_narrative
from gateway.documents.narrative import Source, empty_div, section_div, subject_div, summarise

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LOINC = "http://loinc.org"
WINIFRED = json.loads((FIXTURES / "carehome" / "winifred-maddox.expected.json").read_text())
PATIENT = WINIFRED[0]

Resource = dict[str, Any]

# Elements the page itself writes, and those a narrative may bring.
PAGE_ELEMENTS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "section", "footer",
    "div", "span", "dl", "dt", "dd", "p", "strong", "code", "h2", "h3",
    "table", "thead", "tbody", "tr", "th", "td", "br", "h1", "b", "i",
}  # fmt: skip


def ref(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def resolve(reference: str) -> Resource | None:
    return next((r for r in WINIFRED if ref(r) == reference), None)


def section(title: str, code: str, resources: list[Resource]) -> Resource:
    built: Resource = {
        "title": title,
        "code": {"coding": [{"system": LOINC, "code": code}]},
    }
    if resources:
        built["entry"] = [{"reference": ref(r)} for r in resources]
        rows = [summarise(r, resolve) for r in resources]
        built["text"] = {"status": "generated", "div": section_div(rows)}
    else:
        built["text"] = {"status": "generated", "div": empty_div("No information available.")}
        built["emptyReason"] = {"text": "No information available."}
    return built


def of_type(res_type: str, **where: Any) -> list[Resource]:
    return [
        r
        for r in WINIFRED
        if r["resourceType"] == res_type
        and all(v in json.dumps(r) for v in where.values())
        and r.get("status") != "inactive"
    ]


def red_bag(*, signed: bool = True) -> Resource:
    """A Red Bag built by hand from the care home's golden records, its
    advance decisions and alerts deliberately not first in the Composition."""
    dnacpr_flag = of_type("Flag", code="304253006")
    alerts = [f for f in of_type("Flag") if f not in dnacpr_flag]
    sections = [
        section("Allergies and intolerances", "48765-2", of_type("AllergyIntolerance")),
        section(
            "Medication",
            "10160-0",
            of_type("MedicationStatement") + of_type("MedicationAdministration"),
        ),
        section("Advance decisions", "42348-3", dnacpr_flag + of_type("Consent")),
        section("Alerts and risks", "104605-1", alerts),
        section("Problems", "11450-4", of_type("Condition")),
        section("Belongings and aids", "46264-8", of_type("List")),
        section("Immunisations", "11369-6", []),
    ]
    composition = {
        "resourceType": "Composition",
        "id": "red-bag-1",
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "18761-7"}]},
        "subject": {"reference": f"urn:uuid:{PATIENT['id']}"},
        "date": "2026-07-14T21:02:00+01:00",
        "author": [{"reference": "urn:uuid:gateway", "display": "London care gateway"}],
        "title": "Red Bag: hospital transfer record",
        "text": {"status": "generated", "div": subject_div(PATIENT, "Red Bag")},
        "section": sections,
    }
    listed = {e["reference"] for s in sections for e in s.get("entry", [])}
    entries = [
        {"fullUrl": "urn:uuid:red-bag-1", "resource": composition},
        {"fullUrl": f"urn:uuid:{PATIENT['id']}", "resource": PATIENT},
        *({"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in WINIFRED if ref(r) in listed),
    ]
    bundle: Resource = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:5f1d0b7e-red-bag"},
        "type": "document",
        "timestamp": "2026-07-14T21:02:05+01:00",
        "entry": entries,
    }
    if signed:
        bundle["signature"] = {"type": [{"code": "1.2.840.10065.1.12.1.5"}], "data": "e30"}
    return bundle


class Tags(HTMLParser):
    """Every start tag and attribute name in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)


def tags_of(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def page() -> str:
    return render(red_bag())


def test_the_page_is_one_standalone_html5_document(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page.lower()
    # Nothing loaded from elsewhere: no links, sources or imports.
    assert not {"href", "src", "srcset", "action"} & tags_of(page).attributes
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


def test_only_known_elements_and_no_event_attributes(page: str) -> None:
    found = tags_of(page)
    assert set(found.tags) <= PAGE_ELEMENTS, set(found.tags) - PAGE_ELEMENTS
    assert not [a for a in found.attributes if a.startswith("on") or a == "style"]


def test_the_header_identifies_the_person_and_the_document(page: str) -> None:
    header = page[page.index("<header") : page.index("</header>")]
    assert "MADDOX, Winifred Joan (Mrs)" in header
    assert "known as Winnie" in header
    assert "999 234 5675" in header
    assert "2 Nov 1934 (aged 91)" in header
    assert "Red Bag: hospital transfer record" in header
    assert "14 Jul 2026 21:02" in header
    assert "<title>Red Bag: hospital transfer record: MADDOX, Winifred Joan (Mrs)</title>" in page


def test_not_for_attempted_cpr_comes_before_everything_else(page: str) -> None:
    main = page[page.index("<main>") :]
    cpr = main.index("Not for attempted CPR")
    assert cpr < main.index("Advance decisions") < main.index("Alerts and risks")
    assert main.index("Alerts and risks") < main.index("Allergies and intolerances")
    assert "DNACPR decision 20 Nov 2025" in main
    assert main.index('class="first"') < cpr
    # In the box, and not drawn a second time below it.
    assert main.count("Advance decisions") == 1
    assert main.count("Not for attempted cardiopulmonary resuscitation</td>") == 1


def test_the_other_sections_keep_the_composition_order(page: str) -> None:
    order = ["Allergies and intolerances", "Medication", "Problems", "Belongings", "Immunisations"]
    positions = [page.index(f"<span>{title}") for title in order]
    assert positions == sorted(positions)


def test_section_narratives_are_shown(page: str) -> None:
    assert "Penicillin" in page
    assert "Widespread rash and swelling of the face (severe)" in page
    assert "Sent with the resident: Hearing aid: Left ear, beige, named" in page
    assert "No information available." in page


def test_no_box_and_no_banner_without_a_decision_alerts_or_allergies() -> None:
    document = red_bag()
    composition = document["entry"][0]["resource"]
    composition["section"] = [
        s for s in composition["section"] if s["code"]["coding"][0]["code"] not in ("42348-3",)
    ]
    page = render(document)
    assert "Not for attempted CPR" not in page
    assert 'class="first"' in page  # the alerts still come first

    # Allergies come first whatever they hold: that none is known matters too.
    composition["section"] = [
        s for s in composition["section"] if s["code"]["coding"][0]["code"] == "48765-2"
    ]
    composition["section"][0].pop("entry", None)
    assert 'class="first"' in render(document)
    composition["section"] = [
        s for s in red_bag()["entry"][0]["resource"]["section"] if s["title"] == "Medication"
    ]
    assert 'class="first"' not in render(document)


def test_an_inactive_dnacpr_flag_is_no_banner() -> None:
    document = copy.deepcopy(red_bag())
    for entry in document["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in ("Flag", "Consent"):
            resource["status"] = "inactive"
    assert "Not for attempted CPR" not in render(document)


def test_print_css_is_a4_compact_and_keeps_rows_whole(page: str) -> None:
    assert "@page { size: A4; margin: 12mm }" in page
    assert "@media print" in page
    assert "font-size: 9pt" in page
    assert "break-inside: avoid" in page and "page-break-inside: avoid" in page


def test_tables_stack_on_a_phone(page: str) -> None:
    assert "@media (max-width: 600px)" in page
    phone = page[page.index("@media (max-width: 600px)") :]
    assert "table.rows thead { display: none }" in phone
    assert "display: block" in phone


def test_the_footer_names_the_document_and_its_signature(page: str) -> None:
    footer = page[page.index("<footer>") : page.index("</footer>")]
    assert "urn:uuid:5f1d0b7e-red-bag" in footer
    assert "14 Jul 2026 21:02" in footer
    assert "signed (verify with <code>gateway documents verify</code>)" in footer
    unsigned = render(red_bag(signed=False))
    assert "not signed" in unsigned[unsigned.index("<footer>") :]


def test_a_source_common_to_every_row_is_shown_once_by_the_title() -> None:
    document = red_bag()
    allergies = document["entry"][0]["resource"]["section"][0]
    rows = [summarise(r, resolve) for r in of_type("AllergyIntolerance")]
    source = "Plane Tree House Nursing Home (V9P01)"
    dated = [[Source(source, f"{day} Jul 2026")] for day in range(len(rows))]
    allergies["text"]["div"] = section_div(rows, source_of=dated)
    page = render(document)
    assert page.count(source) == 1
    assert f'<span class="source">From {source}</span>' in page
    assert '<td class="from">' not in page
    # Rows from different sources keep their column, as does a row from two.
    for sources in (
        [[Source("A")], [Source("B")], [Source("B")]],
        [[Source(source)], [Source(source)], [Source(source), Source("B")]],
    ):
        allergies["text"]["div"] = section_div(rows, source_of=sources)
        assert render(document).count('<td class="from">') == 3


def test_nested_sections_and_a_preliminary_document() -> None:
    document = red_bag()
    composition = document["entry"][0]["resource"]
    composition["status"] = "preliminary"
    composition["section"][0]["section"] = [
        {"title": "Drug allergies", "emptyReason": {"text": "Not asked"}}
    ]
    page = render(document)
    assert '<h3><span>Drug allergies</span></h3><p class="empty">Not asked</p>' in page
    assert "PRELIMINARY" in page


def test_a_bundle_with_little_in_it_still_renders() -> None:
    for bundle in (
        {"resourceType": "Bundle"},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Composition"}}]},
        {"resourceType": "Bundle", "entry": ["x", {"resource": {"resourceType": "Patient"}}]},
    ):
        page = render(bundle)
        assert page.startswith("<!DOCTYPE html>") and "</html>" in page


# -- stored narratives through the whitelist ------------------------------------------------------


HOSTILE = (
    '<div xmlns="http://www.w3.org/1999/xhtml">'
    '<p style="position:fixed;top:0;background:white" onclick="steal()" class="what evil">'
    "Not resuscitate? Seen</p>"
    "<script>alert(1)</script>"
    '<img src="https://tracker.example/x.png" onerror="alert(2)"/>'
    '<a href="javascript:alert(3)">the form</a>'
    '<iframe src="https://example.org"></iframe>'
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(4)</script></svg>'
    '<form action="https://example.org"><input name="q"/></form>'
    '<table class="rows"><tbody><tr><td colspan="2" rowspan="x" class="detail">cell</td></tr>'
    "</tbody></table>"
    "<blink>kept text</blink>"
    "</div>"
)


def test_a_stored_narrative_keeps_only_whitelisted_elements_and_attributes() -> None:
    shown = safe_narrative(HOSTILE)
    for gone in ("<script", "<img", "<a ", "<iframe", "<svg", "<form", "<input", "<blink"):
        assert gone not in shown
    for gone in ("style=", "onclick", "onerror", "href", "src=", "alert(", "evil", "rowspan"):
        assert gone not in shown
    assert '<p class="what">Not resuscitate? Seen</p>' in shown
    assert "the form" in shown and "kept text" in shown
    assert '<td class="detail" colspan="2">cell</td>' in shown


def test_a_stored_narrative_that_is_not_xml_is_not_shown() -> None:
    for div in (
        "<div><p>unclosed</div>",
        "plain <b>text",
        '<!DOCTYPE div [<!ENTITY a "aaaa">]><div xmlns="http://www.w3.org/1999/xhtml">&a;</div>',
    ):
        assert "could not be shown safely" in safe_narrative(div)


def test_a_hostile_section_narrative_in_a_document_is_neutralised() -> None:
    document = red_bag()
    document["entry"][0]["resource"]["section"][1]["text"]["div"] = HOSTILE
    page = render(document)
    assert "<script" not in page and "onclick" not in page and "javascript:" not in page
    found = tags_of(page)
    assert set(found.tags) <= PAGE_ELEMENTS | {"p", "td"}
    assert "style" not in found.attributes


def test_a_respect_form_refusing_cpr_alone_raises_the_banner() -> None:
    document = red_bag()
    composition = document["entry"][0]["resource"]
    respect = of_type("Consent", code="polst")
    composition["section"] = [section("Advance decisions", "42348-3", respect)]
    assert "Not for attempted CPR" in render(document)
    # A ReSPECT form that does not refuse CPR raises none.
    respect_for_cpr = copy.deepcopy(respect[0])
    respect_for_cpr["provision"]["type"] = "permit"
    document["entry"] = [
        e for e in document["entry"] if e["resource"].get("id") != respect_for_cpr["id"]
    ] + [{"fullUrl": f"urn:uuid:{respect_for_cpr['id']}", "resource": respect_for_cpr}]
    assert "Not for attempted CPR" not in render(document)


def test_the_subject_is_found_by_a_relative_reference_too() -> None:
    document = red_bag()
    document["entry"][0]["resource"]["subject"] = {"reference": f"Patient/{PATIENT['id']}"}
    assert "999 234 5675" in render(document)
