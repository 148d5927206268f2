"""LaTeX in markdown, pre-rendered to MathML so that the feedback page shows math offline.

nbconvert leaves ``$...$`` in the page for MathJax, which the page loads from a CDN: without
network the student reads raw TeX. Here each formula is converted with ``latex2mathml`` (pure
Python) to MathML, which browsers render natively, and that MathML is rebuilt from an allowlist
of presentation-MathML elements and attributes before it reaches the page: the TeX is the
student's, and latex2mathml passes e.g. ``\\href{javascript:...}`` through as an attribute.

What a page spends on math is bounded whatever the student writes: finding formulas and putting
their MathML in the page are linear in the page's size, and one page converts at most
``MAX_FORMULAS`` formulas and ``MAX_TEX_CHARS`` characters of TeX (counts: the same page every
time), within ``MAX_SECONDS`` (a backstop for a slow machine). The formulas past that stay as
their TeX, escaped text like the rest of the page, and ``MathBudget.ran_out`` says so.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from bs4 import BeautifulSoup, NavigableString, Tag
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_untrusted_xml
from latex2mathml.converter import convert as latex_to_mathml

__all__ = ["MathBudget", "render_math", "replace_text", "sanitize_mathml", "tex_to_mathml"]

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

# One page's math (``MathBudget``): the course's notebook has ~60 formulas, ~700 characters of
# TeX (~0.02 s); at the caps a page's math takes ~1.5 s (a formula of 2,000 characters, up to ~20 ms).
MAX_FORMULAS = 2_000
MAX_TEX_CHARS = 100_000
MAX_SECONDS = 5.0
_CACHE_TEX = 200  # characters: a longer formula is converted each time, never kept
# A batch's pages share most of their cells (the instructor's): a cell's rendering is kept when it
# is small and within the budget, and costs a page its formulas all the same.
_KEEP_HTML, _KEEP_RENDERED, _KEEP_CELLS = 10_000, 50_000, 256
_kept: OrderedDict[str, tuple[str, int, int]] = OrderedDict()  # HTML: (rendered, formulas, TeX characters)


def _local(tag: str) -> str | None:
    return tag[len(_MATHML) + 2 :] if tag.startswith("{" + _MATHML + "}") else None


def _serialize(element: ET.Element, depth: int = 0) -> str:
    name = _local(element.tag)
    if name not in _ELEMENTS or depth > _MAX_DEPTH:
        return ""
    allowed = {key: value for key, value in element.attrib.items() if key in _ATTRIBUTES and _VALUE.fullmatch(value)}
    if name == "math":
        allowed["xmlns"] = _MATHML
    # sorted, as BeautifulSoup writes attributes: the page is the same whether or not it parsed them
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in sorted(allowed.items()))
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
    return _remembered_mathml(tex, display) if len(tex) <= _CACHE_TEX else _mathml(tex, display)


@lru_cache(maxsize=4096)  # a pure function of the TeX; a batch's pages share most of their formulas
def _remembered_mathml(tex: str, display: bool) -> str | None:
    return _mathml(tex, display)


def _mathml(tex: str, display: bool) -> str | None:
    try:
        mathml = latex_to_mathml(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - the student's TeX: anything can be wrong with it
        return None
    return sanitize_mathml(mathml)


@dataclass
class MathBudget:
    """What one page may spend on math; every formula found is paid for, in document order, and
    once one is refused so is every later one (the page says where its math stopped)."""

    formulas: int = MAX_FORMULAS
    tex_chars: int = MAX_TEX_CHARS
    seconds: float = MAX_SECONDS
    ran_out: bool = False
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.seconds

    def take(self, tex: str) -> bool:
        """Pay for converting ``tex``; False where the page cannot afford it."""
        if self.ran_out or self.formulas < 1 or len(tex) > self.tex_chars or time.monotonic() > self._deadline:
            self.ran_out = True
            return False
        self.formulas -= 1
        self.tex_chars -= len(tex)
        return True

    def afford(self, formulas: int, tex_chars: int) -> bool:
        """Pay for a kept cell's formulas at once; False, paying nothing, where the page cannot."""
        if self.ran_out or formulas > self.formulas or tex_chars > self.tex_chars or time.monotonic() > self._deadline:
            return False
        self.formulas -= formulas
        self.tex_chars -= tex_chars
        return True


# The delimiters nbconvert's markdown keeps for MathJax: $$..$$, \[..\], \(..\), $..$
_OPENER = re.compile(r"\$|\\[(\[]")
_CLOSER = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}
_INLINE_END = re.compile(r"[$\n]")


def _formulas(text: str) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end, TeX, display) of each formula in ``text``, as a regex of the four delimiters
    (contents non-empty, the first closer wins; ``$..$`` on one line without ``$``) would find them,
    in linear time: a closer that is nowhere after one opener is not looked for again (the regex
    looked for it from every opener, quadratic in a text of ``\\[`` without ``\\]``)."""
    missing, pos = set(), 0
    while (opener := _OPENER.search(text, pos)) is not None:
        start = opener.start()
        pair = text[start : start + 2]
        if pair in _CLOSER and pair not in missing:
            end = text.find(_CLOSER[pair], start + 3)
            if end >= 0:
                yield start, end + 2, text[start + 2 : end], pair != "\\("
                pos = end + 2
                continue
            missing.add(pair)
        if text[start] == "$":
            end = _INLINE_END.search(text, start + 1)
            if end is not None and end.start() > start + 1 and text[end.start()] == "$":
                yield start, end.end(), text[start + 1 : end.start()], False
                pos = end.end()
                continue
        pos = start + 1


def _replace_formulas(text: str, budget: MathBudget) -> list | None:
    """``text`` split into strings and MathML, or None when no formula of it became MathML."""
    parts, last = [], 0
    for start, end, tex, display in _formulas(text):
        if not budget.take(tex):
            break  # this one and the rest: left as their TeX
        mathml = tex_to_mathml(tex, display=display)
        if mathml is None:
            continue  # left as its TeX
        parts += [text[last:start], mathml]
        last = end
    return parts + [text[last:]] if parts else None


_NOT_TEXT = frozenset({"code", "pre", "math"})


def _text_nodes(soup: BeautifulSoup) -> Iterator[NavigableString]:
    """The runs of text outside code, pre and math, in document order (no recursion: a tree may
    be deeper than Python's stack)."""
    stack = [iter(soup.contents)]
    while stack:
        for node in stack[-1]:
            if type(node) is NavigableString:
                yield node
            elif isinstance(node, Tag) and node.name not in _NOT_TEXT:
                stack.append(iter(node.contents))
                break
        else:
            stack.pop()


def replace_text(html: str, replace: Callable[[str], str | None]) -> str:
    """``html`` with each run of text outside code, pre and math replaced by the HTML ``replace``
    makes of it (None: left as it is).

    That HTML goes into the page as written, not parsed again (parsing it was most of the time a
    page's math took): each run becomes a marker unique to this call, and each marker its HTML once
    the page is serialized."""
    soup = BeautifulSoup(html, "html.parser")
    marker, pieces = secrets.token_hex(16), []
    for node in list(_text_nodes(soup)):
        new = replace(str(node))
        if new is not None:
            node.replace_with(f"{marker}{len(pieces)}.")
            pieces.append(new)
    if not pieces:
        return html
    return re.sub(rf"{marker}(\d+)\.", lambda m: pieces[int(m[1])], str(soup))


def _text_with_mathml(text: str, budget: MathBudget) -> str | None:
    parts = _replace_formulas(text, budget)
    if parts is None:
        return None
    return "".join(escape(p, quote=False) if i % 2 == 0 else p for i, p in enumerate(parts))


def render_math(html: str, budget: MathBudget | None = None) -> str:
    """``html`` with every formula in its text (not in code) replaced by MathML, as far as
    ``budget`` goes (one page's: pass the same to each of its cells)."""
    budget = MathBudget() if budget is None else budget
    if budget.ran_out or ("$" not in html and "\\" not in html):
        return html
    kept = _kept.get(html)
    if kept is not None and budget.afford(kept[1], kept[2]):
        _kept.move_to_end(html)
        return kept[0]
    formulas, tex_chars = budget.formulas, budget.tex_chars
    rendered = replace_text(html, lambda text: _text_with_mathml(text, budget))
    if not budget.ran_out and len(html) <= _KEEP_HTML and len(rendered) <= _KEEP_RENDERED:
        _kept[html] = (rendered, formulas - budget.formulas, tex_chars - budget.tex_chars)
        if len(_kept) > _KEEP_CELLS:
            _kept.popitem(last=False)
    return rendered
