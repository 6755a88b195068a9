"""A document Bundle as one standalone, printable HTML page.

https://hl7.org/fhir/R4/documents.html#presentation: a document is shown from
its Composition's narratives, its sections in order, with the subject's
identity in view (a header band in place of the Composition's own narrative,
which says the same). The page is one string: its CSS inline, no
script and no external resource (a Content-Security-Policy says so to the
browser too), so it can be saved, mailed, printed on one A4 sheet for a typical
care-home resident, or read on a phone in an ambulance.

What must not be missed comes first: the sections of advance directives
(LOINC 42348-3) and alerts (LOINC 104605-1) that hold entries, and allergies
(LOINC 48765-2) whatever they hold, are drawn in a red box above everything
else, headed by "Not for attempted CPR" when the
document lists an active do-not-attempt-CPR decision.

Section narratives are embedded after a second pass through a whitelist: a
stored document's ``div`` may have been written by someone else, so only the
FHIR narrative elements that cannot run, load or overlay anything are kept,
with no attribute but ``class`` (from the narrative's own vocabulary) and table
spans. An inline ``style`` could hide the CPR warning, so it is dropped too.
"""

from __future__ import annotations

import datetime
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from gateway.documents.narrative import (
    CLASSES,
    XHTML,
    codes_in,
    dicts_in,
    format_date,
    known_as,
    nhs_number,
    patient_name,
    text_of,
)
from gateway.documents.sections import not_for_cpr

Resource = dict[str, Any]

_LOINC = "http://loinc.org"
_FIRST = {"42348-3", "104605-1"}  # advance directives, alerts
_ALLERGIES = "48765-2"
_FIRST_ORDER = ("42348-3", "104605-1", _ALLERGIES)

# FHIR's narrative elements (narrative.html#xhtml) less a, img: a page with no
# external resources neither links out nor loads pictures. Their text is kept.
_KEEP = frozenset(
    {
        "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code", "col",
        "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var",
    }
)  # fmt: skip
# Elements whose content is not text for a reader: dropped with everything in them.
_DROP = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
        "input", "button", "textarea", "select", "option", "svg", "math", "link", "meta",
        "base", "img", "picture", "audio", "video", "source", "track", "canvas", "template",
        "noscript", "head", "title",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "col"})
_UNSHOWABLE = '<p class="empty">This section\'s text could not be shown safely.</p>'


# -- the bundle -----------------------------------------------------------------------------


class _Entries:
    """The Bundle's resources by ``fullUrl`` and by ``Type/id``."""

    def __init__(self, bundle: Resource) -> None:
        self.resources: list[Resource] = []
        self._by_ref: dict[str, Resource] = {}
        for entry in dicts_in(bundle.get("entry")):
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                continue
            self.resources.append(resource)
            if isinstance(entry.get("fullUrl"), str):
                self._by_ref[entry["fullUrl"]] = resource
            if isinstance(resource.get("resourceType"), str) and isinstance(
                resource.get("id"), str
            ):
                self._by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource

    def get(self, reference: Any) -> Resource | None:
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if not isinstance(reference, str):
            return None
        if reference in self._by_ref:
            return self._by_ref[reference]
        # An absolute or versioned reference: its last Type/id.
        path = reference.split("/_history/")[0].rstrip("/").split("/")
        return self._by_ref.get("/".join(path[-2:])) if len(path) >= 2 else None


def _concept(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    if text_of(value.get("text")):
        return text_of(value["text"])
    return next(
        (text_of(c.get("display")) for c in dicts_in(value.get("coding")) if c.get("display")), ""
    )


def _esc(text: str) -> str:
    return html.escape(text)


def _sections(composition: Resource) -> Iterator[Resource]:
    """Every section, nested ones after their parent."""
    stack = list(reversed(dicts_in(composition.get("section"))))
    while stack:
        section = stack.pop()
        yield section
        stack.extend(reversed(dicts_in(section.get("section"))))


def _comes_first(section: Resource) -> bool:
    codes = codes_in(section.get("code"), _LOINC)
    # Allergies whether or not any are listed: that none is known is as
    # much for the crew to read first as that one is.
    return _ALLERGIES in codes or bool(codes & _FIRST and dicts_in(section.get("entry")))


def _first_order(section: Resource) -> int:
    codes = codes_in(section.get("code"), _LOINC)
    return next((n for n, code in enumerate(_FIRST_ORDER) if code in codes), len(_FIRST_ORDER))


# -- not for attempted CPR ------------------------------------------------------------------


def _cpr_banner(composition: Resource, entries: _Entries) -> str:
    dates: list[str] = []
    found = False
    for section in _sections(composition):
        for ref in dicts_in(section.get("entry")):
            resource = entries.get(ref)
            when = not_for_cpr(resource) if resource is not None else None
            if when is not None:
                found = True
                if when and when not in dates:
                    dates.append(when)
    if not found:
        return ""
    decided = f"DNACPR decision {', '.join(dates)}" if dates else "DNACPR decision recorded"
    return (
        '<p class="dnacpr" role="alert"><strong>Not for attempted CPR</strong>'
        f"<span>{_esc(decided)}: see below</span></p>"
    )


# -- stored narratives, whitelisted -----------------------------------------------------------


def _attributes(element: ET.Element, tag: str) -> str:
    shown = ""
    classes = [c for c in element.get("class", "").split() if c in CLASSES]
    if classes:
        shown += f' class="{" ".join(classes)}"'
    if tag in ("td", "th"):
        for span in ("colspan", "rowspan"):
            value = element.get(span, "")
            if re.fullmatch(r"[1-9]\d?", value):
                shown += f' {span}="{value}"'
    return shown


def _element(element: ET.Element) -> str:
    namespace, _, tag = element.tag.rpartition("}")
    namespace = namespace.lstrip("{")
    if namespace not in ("", XHTML) or tag in _DROP:
        return ""
    inner = _esc(element.text or "") + "".join(
        _element(child) + _esc(child.tail or "") for child in element
    )
    if tag not in _KEEP:
        return inner  # an unknown wrapper: its text stays, the element goes
    if tag in _VOID:
        return f"<{tag}{_attributes(element, tag)}>{inner}"
    return f"<{tag}{_attributes(element, tag)}>{inner}</{tag}>"


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _has_class(element: ET.Element, name: str) -> bool:
    return name in element.get("class", "").split()


def _fold_source(root: ET.Element) -> str:
    """The one organisation that recorded every row of a narrative's rows
    table, taken out of the table to be shown once by the section's title
    ("" when the rows name others or several): forty rows from one care home
    would otherwise repeat its name forty times and push the page onto a
    second sheet. Each row's own Date says when."""
    tables = [t for t in root.iter() if _local(t) == "table" and _has_class(t, "rows")]
    if len(tables) != 1:
        return ""
    cells = [
        (row, cell)
        for row in tables[0].iter()
        if _local(row) == "tr"
        for cell in row
        if _local(cell) in ("td", "th") and _has_class(cell, "from")
    ]
    named: set[str] = set()
    for _, cell in cells:
        if _local(cell) != "td":
            continue
        organisations = [
            "".join(span.itertext()).strip()
            for span in cell.iter()
            if _local(span) == "span" and _has_class(span, "org")
        ]
        # A cell written before sources were marked up: its text is the source.
        if not organisations and "".join(cell.itertext()).strip():
            organisations = ["".join(cell.itertext()).strip()]
        if len(organisations) != 1:
            return ""
        named.add(organisations[0])
    if len(named) != 1:
        return ""
    for row, cell in cells:
        row.remove(cell)
    return named.pop()


def _narrative(div: str) -> tuple[str, str]:
    """A narrative ``div`` reduced to the whitelist, as HTML for the page,
    and the source folded out of its rows; one that cannot be parsed is
    replaced by a sentence saying so."""
    # Entity declarations can expand without bound; a narrative needs none.
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", div, re.IGNORECASE):
        return _UNSHOWABLE, ""
    try:
        root = ET.fromstring(div)
        source = _fold_source(root)
        inner = _element(root)
    except (ET.ParseError, RecursionError):
        return _UNSHOWABLE, ""
    return f'<div class="narrative">{inner}</div>', source


def safe_narrative(div: str) -> str:
    """A narrative ``div`` reduced to the whitelist, as HTML for the page;
    one that cannot be parsed is replaced by a sentence saying so."""
    shown, source = _narrative(div)
    return f'<p class="from">From {_esc(source)}</p>{shown}' if source else shown


# -- the page ---------------------------------------------------------------------------------


def _age(birth: Any, on: Any) -> str:
    try:
        born = datetime.date.fromisoformat(text_of(birth))
        today = datetime.date.fromisoformat(text_of(on)[:10])
    except ValueError:
        return ""
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return f"aged {years}" if years >= 0 else ""


def _header(composition: Resource, patient: Resource | None, entries: _Entries, at: Any) -> str:
    patient = patient or {}
    subject = composition.get("subject")
    name = patient_name(patient) or (
        text_of(subject.get("display")) if isinstance(subject, dict) else ""
    )
    called = known_as(patient)
    born = format_date(patient.get("birthDate"))
    age = _age(patient.get("birthDate"), at)
    gender = text_of(patient.get("gender")).capitalize()
    facts = [
        ("NHS number", nhs_number(patient) or "Not recorded"),
        ("Born", f"{born} ({age})" if born and age else born or "Not recorded"),
        ("Gender", gender),
    ]
    authors = []
    for ref in dicts_in(composition.get("author")):
        target = entries.get(ref)
        author = text_of(ref.get("display")) or (
            text_of(target.get("name")) if target is not None else ""
        )
        if author:
            authors.append(author)
    status = text_of(composition.get("status"))
    warning = (
        f'<span class="doc-status">{_esc(status.replace("-", " ").upper())}</span>'
        if status and status != "final"
        else ""
    )
    return (
        '<header class="band">'
        f'<div class="person"><span class="name">{_esc(name or "Name not recorded")}</span>'
        + (f' <span class="known">known as {_esc(called)}</span>' if called else "")
        + "</div>"
        '<dl class="ids">'
        + "".join(
            f"<div><dt>{label}</dt><dd>{_esc(value)}</dd></div>" for label, value in facts if value
        )
        + "</dl>"
        '<div class="doc"><span class="title">'
        f"{_esc(text_of(composition.get('title')) or 'Document')}"
        f"</span> {warning}<span>{_esc(format_date(composition.get('date')))}</span>"
        + (f"<span>by {_esc(', '.join(authors))}</span>" if authors else "")
        + "</div></header>"
    )


def _section(section: Resource, level: int) -> str:
    title = text_of(section.get("title")) or _concept(section.get("code")) or "Section"
    text = section.get("text")
    div = text_of(text.get("div")) if isinstance(text, dict) else ""
    source = ""
    if div:
        body, source = _narrative(div)
    else:
        reason = _concept(section.get("emptyReason")) or "No information in this section."
        body = f'<p class="empty">{_esc(reason)}</p>'
    heading = f"h{min(level, 6)}"
    nested = "".join(_section(inner, level + 1) for inner in dicts_in(section.get("section")))
    by = f'<span class="source">From {_esc(source)}</span>' if source else ""
    return (
        f'<section class="part"><{heading}><span>{_esc(title)}</span>{by}</{heading}>'
        f"{body}{nested}</section>"
    )


def _footer(bundle: Resource) -> str:
    identifier = bundle.get("identifier")
    value = text_of(identifier.get("value")) if isinstance(identifier, dict) else ""
    built = format_date(bundle.get("timestamp"))
    signed = (
        "signed (verify with <code>gateway documents verify</code>)"
        if isinstance(bundle.get("signature"), dict)
        else "not signed"
    )
    return (
        "<footer>"
        + (f"Document {_esc(value)}. " if value else "")
        + (f"Built by the gateway at {_esc(built)}; " if built else "Built by the gateway; ")
        + f"{signed}.</footer>"
    )


def _composition(entries: _Entries) -> Resource:
    # The first entry by the rules for documents; any Composition otherwise.
    first = entries.resources[0] if entries.resources else {}
    if first.get("resourceType") == "Composition":
        return first
    return next((r for r in entries.resources if r.get("resourceType") == "Composition"), {})


def render(document: dict[str, Any]) -> str:
    """A document Bundle as one HTML5 page: the person, alerts and advance
    decisions first, then every other section in the Composition's order."""
    entries = _Entries(document)
    composition = _composition(entries)
    patient = entries.get(composition.get("subject"))
    at = composition.get("date") or document.get("timestamp")
    top = dicts_in(composition.get("section"))
    # In the box: advance decisions, then alerts, then allergies.
    first = sorted((s for s in top if _comes_first(s)), key=_first_order)
    banner = _cpr_banner(composition, entries)
    alerts = ""
    if first or banner:
        alerts = (
            '<div class="first" aria-label="Read first">'
            + banner
            + "".join(_section(s, 2) for s in first)
            + "</div>"
        )
    rest = "".join(_section(s, 2) for s in top if not _comes_first(s))
    rest = f'<div class="rest">{rest}</div>' if rest else ""
    title = text_of(composition.get("title")) or "Document"
    name = patient_name(patient or {})
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_esc(f'{title}: {name}' if name else title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        + _header(composition, patient, entries, at)
        + f"<main>{alerts}{rest}</main>"
        + _footer(document)
        + "</body></html>\n"
    )


_CSS = """
@page { size: A4; margin: 12mm }
* { box-sizing: border-box }
html { -webkit-text-size-adjust: 100% }
body { margin: 0 auto; max-width: 62rem; padding: 0 8px 8px; color: #111; background: #fff;
  font: 10pt/1.3 "Helvetica Neue", Arial, "Liberation Sans", sans-serif }
header.band { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 16px;
  background: #005eb8; color: #fff; padding: 5px 8px; margin: 0 -8px 4px }
header.band .person { flex: 1 1 auto }
header.band .name { font-size: 13pt; font-weight: bold }
header.band .known { font-style: italic }
header.band dl { display: flex; flex-wrap: wrap; gap: 0 14px; margin: 0 }
header.band dl div { display: flex; gap: 4px }
header.band dt { font-weight: normal; opacity: .85 }
header.band dd { margin: 0; font-weight: bold; white-space: nowrap }
header.band .doc { flex: 1 0 100%; display: flex; flex-wrap: wrap; gap: 0 12px; font-size: 9pt }
header.band .doc .title { font-weight: bold }
.doc-status { background: #ffeb3b; color: #000; font-weight: bold; padding: 0 4px }
.first { border: 3px solid #c8102e; background: #fff3f3; padding: 2px 6px 4px; margin: 4px 0 }
.first h2 { color: #c8102e; border-color: #c8102e }
.dnacpr { margin: 2px 0 4px; padding: 4px 8px; background: #c8102e; color: #fff;
  display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 12px }
.dnacpr strong { font-size: 16pt; text-transform: uppercase; letter-spacing: .02em }
section.part { margin: 3px 0 0 }
/* A part of a section (a stay's medicines changed) reads as its part, not
   as the next section: set in under a rule. */
section.part section.part { margin-left: 2px; padding-left: 6px; border-left: 2px solid #8fb3dc }
h2, h3, h4, h5, h6 { font-size: 10pt; margin: 4px 0 1px; padding-bottom: 1px;
  border-bottom: 1.5px solid #005eb8; break-after: avoid; page-break-after: avoid }
h3, h4, h5, h6 { font-size: 9.5pt; border-bottom-width: 1px }
section.part > :is(h2, h3, h4, h5, h6) { display: flex; flex-wrap: wrap; align-items: baseline;
  justify-content: space-between; gap: 0 8px }
.source { font-size: 8pt; font-weight: normal; color: #444 }
.narrative h1, .narrative h2, .narrative h3 { font-size: 10pt; border: 0; margin: 2px 0 }
.narrative p { margin: 1px 0 }
p.empty { margin: 1px 0; font-style: italic; color: #444 }
p.from { margin: 0; font-size: 8pt; color: #444 }
table { border-collapse: collapse; width: 100% }
th, td { text-align: left; vertical-align: top; padding: 1px 4px 1px 0 }
td { border-top: .5px solid #bbb }
thead th { font-size: 8pt; color: #444; font-weight: normal }
tr { break-inside: avoid; page-break-inside: avoid }
td.what { width: 24%; font-weight: bold }
td.when { width: 14% }
td.status { width: 9% }
td.from { width: 15%; color: #444 }
table.subject th { width: 9rem; font-weight: normal; color: #444 }
footer { margin-top: 6px; padding-top: 2px; border-top: 1px solid #999; font-size: 8pt;
  color: #444 }
code { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: .95em }
@media print {
  /* A narrow face where there is one (Arial Narrow on most office PCs,
     Liberation Sans Narrow on Linux): a sixth more words to the line. */
  body { max-width: none; padding: 0; font-size: 9pt; line-height: 1.12;
    font-family: "Arial Narrow", "Liberation Sans Narrow", "Roboto Condensed", "Helvetica Neue",
      Arial, "Liberation Sans", sans-serif }
  header.band { margin: 0 0 2px; padding: 2px 6px; gap: 0 14px }
  header.band .name { font-size: 12pt }
  header.band .doc { flex: 0 1 auto; margin-left: auto }
  header.band, .first, .dnacpr { -webkit-print-color-adjust: exact; print-color-adjust: exact }
  h2, h3, h4, h5, h6 { margin: 2px 0 0; padding: 0; font-size: 9.5pt; line-height: 1.15 }
  .first { padding: 0 4px 2px; margin: 2px 0 }
  .dnacpr { margin: 2px 0; padding: 1px 6px }
  /* Rows flow as lines of text: a table's empty cells would waste the sheet. */
  table.rows, table.rows tbody { display: block }
  table.rows thead { display: none }
  table.rows tr { display: block; border-top: .5px solid #ccc }
  table.rows td { display: inline; border: 0; padding: 0 }
  table.rows td.detail:not(:empty)::before { content: " \\2013  "; font-weight: normal }
  table.rows td.when:not(:empty)::before, table.rows td.status:not(:empty)::before,
  table.rows td.from:not(:empty)::before { content: " \\00b7  " }
  table.rows td.when, table.rows td.status { color: #333 }
  table.rows td.from { color: #555; font-size: 7pt }
  /* Two columns: most rows are short, and a line of half the sheet's width
     wastes less of it at the end of each row. */
  .rest { column-count: 2; column-gap: 4mm }
  section.part { break-inside: auto }
  footer { margin-top: 3px; font-size: 7.5pt }
}
@media (max-width: 600px) {
  body { font-size: 11pt; padding: 0 6px 6px }
  header.band { margin: 0 -6px 4px }
  table.rows, table.rows tbody, table.rows tr, table.rows td { display: block; width: auto }
  table.rows thead { display: none }
  table.rows tr { border-top: 1px solid #bbb; padding: 3px 0 }
  table.rows td { border: 0; padding: 0 }
  table.rows td:empty { display: none }
  td.when::before { content: "Date: "; color: #444 }
  td.status::before { content: "Status: "; color: #444 }
  td.from::before { content: "From: "; color: #444 }
  .dnacpr strong { font-size: 15pt }
}
"""
