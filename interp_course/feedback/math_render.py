"""LaTeX in markdown, pre-rendered to MathML so that the feedback page shows math offline.

nbconvert leaves ``$...$`` in the page for MathJax, which the page loads from a CDN: without
network the student reads raw TeX. Here each formula is converted with ``latex2mathml`` (pure
Python) to MathML, which browsers render natively, and that MathML is rebuilt from an allowlist
of presentation-MathML elements and attributes before it reaches the page: the TeX is the
student's, and latex2mathml passes e.g. ``\\href{javascript:...}`` through as an attribute.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape
from typing import Callable
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from bs4 import BeautifulSoup, NavigableString
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_untrusted_xml
from latex2mathml.converter import convert as latex_to_mathml

__all__ = ["render_math", "sanitize_mathml", "tex_to_mathml"]

_MATHML = "http://www.w3.org/1998/Math/MathML"
_ELEMENTS = frozenset(
    "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder "
    "munderover mtable mtr mtd mstyle mpadded mphantom menclose merror mprescripts none "
    "mmultiscripts".split()
)
_ATTRIBUTES = frozenset(
    "display mathvariant stretchy fence separator accent accentunder lspace rspace linethickness "
    "columnalign rowalign columnspacing rowspacing columnlines rowlines frame width height depth "
    "minsize maxsize movablelimits symmetric largeop form notation scriptlevel displaystyle "
    "mathsize mathcolor mathbackground".split()
)
_VALUE = re.compile(r"[A-Za-z0-9 .#%+-]{0,40}")  # names, numbers, lengths, colours: no url(), no quotes
_MAX_TEX = 2000
_MAX_DEPTH = 60

# The delimiters nbconvert's markdown keeps for MathJax: $$..$$, \[..\], \(..\), $..$
_FORMULA = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$\n]+?)\$", re.DOTALL)


def _local(tag: str) -> str | None:
    return tag[len(_MATHML) + 2 :] if tag.startswith("{" + _MATHML + "}") else None


def _serialize(element: ET.Element, depth: int = 0) -> str:
    name = _local(element.tag)
    if name not in _ELEMENTS or depth > _MAX_DEPTH:
        return ""
    attrs = ' xmlns="http://www.w3.org/1998/Math/MathML"' if name == "math" else ""
    for key, value in element.attrib.items():
        if key in _ATTRIBUTES and _VALUE.fullmatch(value):
            attrs += f" {key}={quoteattr(value)}"
    inner = xml_escape(element.text or "") + "".join(
        _serialize(child, depth + 1) + xml_escape(child.tail or "") for child in element
    )
    return f"<{name}{attrs}>{inner}</{name}>"


def sanitize_mathml(mathml: str) -> str | None:
    """A <math> element rebuilt from allowlisted elements and attributes; None if it is not one."""
    try:
        root = parse_untrusted_xml(mathml.encode("utf-8"))
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    return _serialize(root) if _local(root.tag) == "math" else None


def tex_to_mathml(tex: str, display: bool = False) -> str | None:
    """Safe MathML for a formula, or None where latex2mathml cannot read it."""
    if len(tex) > _MAX_TEX:
        return None
    try:
        mathml = latex_to_mathml(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - the student's TeX: anything can be wrong with it
        return None
    return sanitize_mathml(mathml)


def _replace_formulas(text: str) -> list | None:
    """``text`` split into strings and MathML, or None when it holds no formula."""
    parts, last = [], 0
    for match in _FORMULA.finditer(text):
        display_tex = match.group(1) or match.group(2)
        tex = display_tex if display_tex is not None else (match.group(3) or match.group(4))
        mathml = tex_to_mathml(tex, display=display_tex is not None)
        if mathml is None:
            continue  # left as its TeX
        parts += [text[last : match.start()], mathml]
        last = match.end()
    return parts + [text[last:]] if parts else None


def replace_text(html: str, replace: Callable[[str], str | None]) -> str:
    """``html`` with each run of text outside code, pre and math replaced by the HTML ``replace``
    makes of it (None: left as it is)."""
    soup = BeautifulSoup(html, "html.parser")
    changed = False
    for node in list(soup.find_all(string=True)):
        if type(node) is not NavigableString or node.find_parent(["code", "pre", "math"]):
            continue
        new = replace(str(node))
        if new is not None:
            node.replace_with(BeautifulSoup(new, "html.parser"))
            changed = True
    return str(soup) if changed else html


def _text_with_mathml(text: str) -> str | None:
    parts = _replace_formulas(text)
    if parts is None:
        return None
    return "".join(escape(p, quote=False) if i % 2 == 0 else p for i, p in enumerate(parts))


@lru_cache(maxsize=1024)  # a pure function of the text; a batch's pages share most of theirs
def render_math(html: str) -> str:
    """``html`` with every formula in its text (not in code) replaced by MathML."""
    if "$" not in html and "\\" not in html:
        return html
    return replace_text(html, _text_with_mathml)
