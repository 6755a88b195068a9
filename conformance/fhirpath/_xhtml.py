"""``htmlChecks()``: the narrative rules of FHIR R4 that txt-1 and txt-2 name.

https://hl7.org/fhir/R4/narrative.html#xhtml: the div is well-formed XHTML in
the XHTML namespace, holds only the basic formatting elements of HTML 4.0
chapters 7-11 (less 9.4, ins/del) and 12 (less 12.3, link), images and the
style attribute; no head, body, scripts, forms, frames, objects, base or link
elements, no event attributes; and it has some non-whitespace content (text or
an image). The element and attribute lists are those the HL7 reference
validator accepts (which also lets through HTML 4's font-style elements b, i,
tt, big, small, hr and client-side image maps).

R4 gives both txt-1 (allowed content) and txt-2 (non-whitespace content) the
same expression, ``htmlChecks()``, so this function checks both; a div that
breaks either fails both invariants.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html.entities import name2codepoint
from xml.etree import ElementTree

XHTML = "http://www.w3.org/1999/xhtml"
_XML = "http://www.w3.org/XML/1998/namespace"

ELEMENTS = frozenset(
    [
        "p",
        "br",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
        "b",
        "em",
        "i",
        "strong",
        "small",
        "big",
        "tt",
        "dfn",
        "q",
        "var",
        "abbr",
        "acronym",
        "cite",
        "blockquote",
        "hr",
        "address",
        "bdo",
        "kbd",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "caption",
        "colgroup",
        "col",
        "thead",
        "tr",
        "tfoot",
        "tbody",
        "th",
        "td",
        "code",
        "samp",
        "img",
        "map",
        "area",
    ]
)
ATTRIBUTES = frozenset(
    [
        "title",
        "style",
        "class",
        "id",
        "lang",
        "dir",
        "accesskey",
        "tabindex",
        "span",
        "width",
        "align",
        "valign",
        "char",
        "charoff",
        "abbr",
        "axis",
        "headers",
        "scope",
        "rowspan",
        "colspan",
    ]
)
ELEMENT_ATTRIBUTES = frozenset(
    [
        "a.href",
        "a.name",
        "a.charset",
        "a.type",
        "a.hreflang",
        "a.rel",
        "a.rev",
        "a.shape",
        "a.coords",
        "img.src",
        "img.alt",
        "img.longdesc",
        "img.height",
        "img.width",
        "img.usemap",
        "img.ismap",
        "img.border",
        "map.name",
        "area.shape",
        "area.coords",
        "area.href",
        "area.nohref",
        "area.alt",
        "table.summary",
        "table.width",
        "table.border",
        "table.frame",
        "table.rules",
        "table.cellspacing",
        "table.cellpadding",
        "blockquote.cite",
        "q.cite",
        "pre.space",
        "td.nowrap",
        "th.nowrap",
    ]
)
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _numeric_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES or name not in name2codepoint:
        return match.group()
    return f"&#{name2codepoint[name]};"


def narrative_problem(div: str) -> str | None:
    """Why a narrative div breaks R4's rules, or None if it keeps them."""
    if "<!DOCTYPE" in div or "<!ENTITY" in div:
        return "declarations are not allowed in a narrative"
    try:
        root = ElementTree.fromstring(_ENTITY.sub(_numeric_entity, div))
    except ElementTree.ParseError as error:
        return f"not well-formed XHTML: {error}"
    if root.tag != f"{{{XHTML}}}div":
        return "the narrative is not an XHTML div"
    content = False
    for element in root.iter():
        namespace, _, name = element.tag.rpartition("}")
        if namespace != "{" + XHTML or name not in ELEMENTS:
            return f"element {name} is not allowed in a narrative"
        for attribute in element.attrib:
            attr_namespace, _, attr_name = attribute.rpartition("}")
            if attr_namespace == "{" + _XML and attr_name == "lang":
                continue
            if attr_namespace or (
                attr_name not in ATTRIBUTES and f"{name}.{attr_name}" not in ELEMENT_ATTRIBUTES
            ):
                return f"attribute {attr_name} is not allowed on {name}"
        if name == "img" or (element.text and element.text.strip()):
            content = True
        if element is not root and element.tail and element.tail.strip():
            content = True
    if not content:
        return "the narrative has no non-whitespace content"
    return None


@lru_cache(maxsize=512)
def html_checks(div: str) -> bool:
    """Whether a narrative div keeps the rules; parsing XHTML is the dearest
    check there is, so a div met before is answered from memory."""
    return narrative_problem(div) is None
