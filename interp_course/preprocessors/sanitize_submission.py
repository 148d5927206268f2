"""Make a graded notebook inert before anyone looks at it.

A submission's outputs and markdown reach two HTML pages: the feedback page
(``nbgrader generate_feedback``), opened by the student and by TAs, and formgrader's
manual-grading page, which runs inside the TA's authenticated Jupyter session (a script there
can open a terminal as the instructor). nbconvert puts ``text/html``, ``application/javascript``,
raw HTML in markdown, ``javascript:`` links written in markdown, the body of a ```` ```mermaid ````
block, and output metadata such as an image's ``width`` into those pages as they are, and both
of nbgrader's templates render markdown cells without ``HTMLExporter.sanitize_html``.

``SanitizeSubmission`` rewrites the notebook so that what those templates make of it is safe:

* outputs keep only inert mimetypes; ``text/html`` is cleaned with bleach (an allowlist of tags,
  attributes, classes, CSS properties and URL schemes), ``text/markdown`` becomes cleaned HTML,
  ``image/svg+xml`` is parsed as XML and rebuilt from an allowlist of SVG elements and
  attributes, PNG/JPEG/GIF outputs must be base64 of a well-formed image of that type
  (``interp_course.security.images``), and output metadata keeps only numeric ``width``/``height`` and a
  short string ``alt`` (which the templates escape);
* a markdown cell stays as written only if nbconvert renders it exactly as an inert renderer
  does (raw HTML escaped, safe links, embedded images, no mermaid, no heading ids); otherwise its
  source becomes its cleaned rendering, as one HTML block that markdown passes through
  unchanged. An answer cell left as released keeps a matching nbgrader checksum, so it still
  scores 0 with "No response.";
* fields the templates print unescaped (execution counts) must be integers; widget state, which
  the templates hand to a widget renderer loaded from a CDN, is dropped.

nbconvert's own ``SanitizeHTML`` preprocessor was the starting point; it is not enough here: it
bleaches the markdown *source* (breaking blockquotes and ``<`` in code and math, and missing
links and mermaid blocks that markdown syntax turns into HTML), removes SVG, leaves output
metadata alone, and its allowlist turns ordinary tables and images into escaped text.
"""

from __future__ import annotations

import math
from functools import lru_cache
import re
from html import escape as html_escape
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import bleach
import nbformat
from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, ALLOWED_SVG_PROPERTIES, CSSSanitizer
from bs4 import BeautifulSoup
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_untrusted_xml
from mistune import HTMLRenderer
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from nbgrader.utils import compute_checksum
from pygments.token import STANDARD_TYPES
from traitlets import Bool, Unicode

from interp_course.security.images import valid_base64_image

__all__ = ["SanitizeSubmission", "clean_html", "render_markdown", "safe_markdown", "sanitize_svg"]

# ---------------------------------------------------------------------------------------- HTML
_TAGS = frozenset(
    "a abbr acronym b bdi bdo blockquote br caption center cite code col colgroup dd del details "
    "dfn div dl dt em figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q rp "
    "rt ruby s samp small span strike strong sub summary sup table tbody td tfoot th thead tr tt "
    "u ul var wbr".split()
)
# Removed with everything inside, so that a script's or a stylesheet's text does not show up as
# page text (bleach, stripping a tag it does not allow, keeps its content). Cosmetic only: the
# bleach pass afterwards is what makes the HTML safe. Removing the first group leaves a note.
_ACTIVE = ("script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math")
_DROP_WITH_CONTENT = (
    *_ACTIVE, "style", "template", "noscript", "noembed", "noframes", "title", "textarea", "select", "xmp",
)
# Classes that nbconvert, pygments and pandas produce. Others are dropped: a student's class
# could hook the page's own CSS and scripts (formgrader binds its score inputs by class, the
# feedback page renders `class="mermaid"` with mermaid.js, bootstrap turns classes into UI).
_CLASSES = frozenset({"highlight", "dataframe", "anchor-link"} | {c for c in STANDARD_TYPES.values() if c})
_CLASS_PATTERN = re.compile(r"hl-[A-Za-z0-9_+-]+")
_NUMBER = re.compile(r"\d{1,5}(\.\d{1,3})?%?")
_SMALL_INT = re.compile(r"\d{1,4}")
_TABLE_ATTRS = {
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "tr": {"align", "valign"},
    "col": {"span", "align"},
    "colgroup": {"span", "align"},
    "ol": {"start", "type"},
    "li": {"value"},
    "details": {"open"},
    "img": {"alt"},
    "table": {"border"},
}
_INT_ATTRS = {"colspan", "rowspan", "span", "start", "value", "border"}
_IMAGE_DATA_URL = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[a-z0-9+/=]*")
# What a browser ignores inside a URL before deciding its scheme ("java\nscript:" is javascript:)
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def _url(value: str) -> str:
    return _URL_NOISE.sub("", value).lower()


def _safe_href(value: str) -> bool:
    # no relative links: in formgrader they would point into the TA's Jupyter server
    return _url(value).startswith(("#", "http://", "https://", "mailto:"))


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name in ("title", "lang", "dir", "style"):  # style: bleach's CSS sanitizer filters it
        return True
    if name == "class":
        return all(c in _CLASSES or _CLASS_PATTERN.fullmatch(c) for c in value.split())
    if tag == "a" and name == "href":
        return _safe_href(value)
    if tag == "img" and name == "src":
        # embedded images only: nothing is fetched when the page opens
        return _IMAGE_DATA_URL.fullmatch(_url(value)) is not None
    if tag == "img" and name in ("width", "height"):
        return _NUMBER.fullmatch(value) is not None
    if name in _TABLE_ATTRS.get(tag, ()):
        return name not in _INT_ATTRS or _SMALL_INT.fullmatch(value) is not None
    return False


class _CSS(CSSSanitizer):
    """bleach's CSS sanitizer filters properties, not values: a ``url()`` in an allowed property
    (``cursor: url(...)``) would still be fetched when the page shows it. Such a style is
    dropped whole, as is one with CSS escapes, which could spell ``url`` another way."""

    def __init__(self, local_urls: bool = False, **kw) -> None:
        super().__init__(**kw)
        self._url = re.compile(r"url\s*\((?!\s*['\"]?#)" if local_urls else r"url\s*\(", re.IGNORECASE)

    def sanitize_css(self, style: str) -> str:
        css = super().sanitize_css(style)
        return "" if "\\" in css or self._url.search(css) or re.search(r"image-set|expression", css, re.I) else css


_CLEANER = bleach.Cleaner(
    tags=_TAGS,
    attributes=_allowed_attribute,
    protocols={"http", "https", "mailto", "data"},  # data: only for <img src>, checked above
    strip=True,
    strip_comments=True,
    css_sanitizer=_CSS(allowed_css_properties=ALLOWED_CSS_PROPERTIES),
)


# bleach's parser (html5lib) takes time quadratic in nesting depth: 9000 nested <div>, under the
# output cap, take 12 s; ordinary HTML is rarely 30 deep. Deeper HTML is shown as its text.
_MAX_DEPTH = 100


def _depth_exceeds(node, limit: int) -> bool:
    stack = [(node, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in getattr(node, "contents", ()) if child.name)
    return False


# Cleaning and checking are pure functions of the text, and a batch's notebooks share most of
# theirs (the instructions, identical outputs of correct code): each distinct text is done once.
@lru_cache(maxsize=1024)
def _clean_html(html: str) -> tuple[str, int]:
    """Cleaned HTML and how many active elements (scripts, frames, inline SVG...) were removed."""
    soup = BeautifulSoup(html, "html.parser")
    removed = 0
    for element in soup.find_all(_DROP_WITH_CONTENT):
        if not element.decomposed:  # not inside one removed before
            removed += element.name in _ACTIVE
            element.decompose()
    if _depth_exceeds(soup, _MAX_DEPTH):
        return f"<pre>{html_escape(soup.get_text())}</pre>", removed
    return _CLEANER.clean(str(soup)), removed


def clean_html(html) -> str:
    """Allowlist-clean an HTML fragment (bleach). Also usable as nbconvert's ``clean_html``."""
    html = html.decode("utf-8", "replace") if isinstance(html, bytes) else str(html)
    return _clean_html(html)[0]


# ------------------------------------------------------------------------------------ markdown
def render_markdown(source: str, attachments: dict | None = None, anchors: bool = True) -> str:
    """What nbconvert's ``HTMLExporter.markdown2html`` makes of markdown (default settings)."""
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, exclude_anchor_links=not anchors)
    return MarkdownWithMath(renderer=renderer).render(source)


class _InertRenderer(IPythonRenderer):
    """nbconvert's renderer with nothing a student can turn into markup: raw HTML escaped, links
    to http(s)/mailto/#fragments only, embedded images only, mermaid as plain code, headings
    without ids (an id can hijack the page's own `#id` lookups: formgrader finds each score
    input by the grade_id)."""

    def __init__(self, attachments: dict | None = None) -> None:
        super().__init__(escape=True, allow_harmful_protocols=False, exclude_anchor_links=True, attachments=attachments)

    def link(self, text, url, title=None):
        return super().link(text, url, title) if _safe_href(url) else text

    def image(self, text, url, title=None):
        html = super().image(text, url, title)
        return html if _IMAGE_SRC_ATTR.search(html) else html_escape(text)

    def block_mermaidjs(self, code):
        return HTMLRenderer.block_code(self, code)


_IMAGE_SRC_ATTR = re.compile(r'<img src="data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]*"')


def _inert_markdown(source: str, attachments: dict | None) -> str:
    return MarkdownWithMath(renderer=_InertRenderer(attachments)).render(source)


def _as_html_block(html: str) -> str:
    """Markdown that renders to exactly ``html``: a line opening with <div> starts an HTML block,
    which ends only at a blank line, and character references keep the line breaks."""
    return "<div>" + html.replace("\r", "&#13;").replace("\n", "&#10;") + "</div>"


def _is_html_block(source: str) -> bool:
    return source.startswith("<div>") and source.endswith("</div>") and "\n" not in source


def _as_code_block(text: str) -> str:
    """Markdown that shows ``text`` verbatim, as an indented code block."""
    return "\n".join("    " + line for line in text.splitlines()) or "    "


def _renders_inert(source: str, attachments: dict | None) -> bool:
    """nbconvert renders ``source`` exactly as the inert renderer does, so nothing in it is live."""
    try:
        return render_markdown(source, attachments) == _inert_markdown(source, attachments)
    except Exception:  # noqa: BLE001 - e.g. a missing attachment: nbconvert fails too
        return False


_UNSHOWABLE = "*[This cell could not be shown safely.]*"


def safe_markdown(source: str, attachments: dict | None = None) -> str:
    """``source`` itself if nbconvert renders it inert; else markdown that renders to the
    cleaned HTML of ``source`` (one raw HTML block); else ``source`` as a code block."""
    return _safe_markdown(source, attachments) if attachments else _safe_markdown_text(source)


@lru_cache(maxsize=1024)
def _safe_markdown_text(source: str) -> str:
    return _safe_markdown(source, None)


def _safe_markdown(source: str, attachments: dict | None) -> str:
    if _renders_inert(source, attachments):
        return source
    try:
        if _is_html_block(source):  # made here before: clean what it holds, don't wrap it again
            html = clean_html(source[len("<div>") : -len("</div>")]).strip()
        else:
            html = clean_html(render_markdown(source, attachments, anchors=False)).strip()
        block = _as_html_block(html)
        if render_markdown(block).strip() == block:  # passed through verbatim
            return block
    except Exception:  # noqa: BLE001
        pass
    for option in (_as_code_block(source), _UNSHOWABLE):
        if _renders_inert(option, None):
            return option
    return ""


# ----------------------------------------------------------------------------------------- SVG
_SVG = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"
_XML = "http://www.w3.org/XML/1998/namespace"

# No script, foreignObject (HTML inside), a (links), image (fetches), animate/set (can rewrite
# an href to javascript:), style (page-wide CSS when inlined).
_SVG_ELEMENTS = frozenset(
    "svg g defs symbol use path rect circle ellipse line polyline polygon text tspan title desc "
    "clipPath mask pattern marker linearGradient radialGradient stop".split()
)
_SVG_ATTRIBUTES = frozenset(
    "id transform d x y x1 y1 x2 y2 cx cy r rx ry fx fy width height points viewBox "
    "preserveAspectRatio version fill fill-opacity fill-rule stroke stroke-width stroke-opacity "
    "stroke-linecap stroke-linejoin stroke-dasharray stroke-dashoffset stroke-miterlimit opacity "
    "clip-path clip-rule clipPathUnits mask maskUnits maskContentUnits font-family font-size "
    "font-weight font-style text-anchor dominant-baseline alignment-baseline dx dy rotate "
    "textLength lengthAdjust offset stop-color stop-opacity gradientUnits gradientTransform "
    "spreadMethod patternUnits patternContentUnits patternTransform markerWidth markerHeight "
    "markerUnits refX refY orient visibility display overflow vector-effect color letter-spacing "
    "word-spacing pathLength".split()
)
_SVG_CSS = _CSS(local_urls=True, allowed_css_properties=ALLOWED_CSS_PROPERTIES,
                allowed_svg_properties=ALLOWED_SVG_PROPERTIES)
# url(...) in an attribute may only point inside the document: url(#clip1)
_NON_LOCAL_URL = re.compile(r"url\s*\(\s*['\"]?\s*(?!#)", re.IGNORECASE)


def _svg_name(tag: str) -> str | None:
    if tag.startswith("{" + _SVG + "}"):
        return tag[len(_SVG) + 2 :]
    return None


def _clean_svg_element(element: ET.Element) -> None:
    for name, value in list(element.attrib.items()):
        if name in (f"{{{_XLINK}}}href", "href"):
            keep = value.strip().startswith("#")
        elif name == f"{{{_XML}}}space":
            keep = value in ("default", "preserve")
        elif name == "style":
            value = _SVG_CSS.sanitize_css(value)
            keep = bool(value)
            element.set(name, value)
        else:
            keep = name in _SVG_ATTRIBUTES and not _NON_LOCAL_URL.search(value)
        if not keep:
            del element.attrib[name]
    for child in list(element):
        if _svg_name(child.tag) in _SVG_ELEMENTS:
            _clean_svg_element(child)
        else:
            element.remove(child)


def _serialize_svg(element: ET.Element, root: bool = False) -> str:
    name = _svg_name(element.tag)
    attrs = ' xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"' if root else ""
    for key, value in element.attrib.items():
        key = {f"{{{_XLINK}}}href": "xlink:href", f"{{{_XML}}}space": "xml:space"}.get(key, key)
        attrs += f" {key}={quoteattr(value)}"
    inner = xml_escape(element.text or "") + "".join(
        _serialize_svg(child) + xml_escape(child.tail or "") for child in element
    )
    return f"<{name}{attrs}>{inner}</{name}>"


def sanitize_svg(svg: str) -> str | None:
    """An SVG document rebuilt from allowlisted elements and attributes; None if it is not one."""
    try:
        # no entity declarations (billion laughs), no external entities; a DOCTYPE is allowed
        root = parse_untrusted_xml(svg.encode("utf-8"), forbid_dtd=False)
    except (ET.ParseError, DefusedXmlException, ValueError):
        return None
    if _svg_name(root.tag) != "svg" or _depth_exceeds_xml(root, _MAX_DEPTH):
        return None  # (the cleaning below recurses)
    _clean_svg_element(root)
    return _serialize_svg(root, root=True)


def _depth_exceeds_xml(root: ET.Element, limit: int) -> bool:
    stack = [(root, 0)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in element)
    return False


# ------------------------------------------------------------------------------------- outputs
_TEXT_TYPES = ("text/plain", "text/latex", "application/json")  # escaped by the templates
MAX_ALT = 300  # characters of an image's alt text kept
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_OUTPUT_FIELDS = {
    "stream": ("name", "text"),
    "display_data": ("data", "metadata"),
    "execute_result": ("data", "metadata", "execution_count"),
    "error": ("ename", "evalue", "traceback"),
}


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _count(value) -> int | None:
    # the templates print execution counts unescaped; a kernel can send any JSON there
    return value if type(value) is int else None


def _dimension(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 < value <= 100_000


def _image_metadata(meta) -> dict:
    if not isinstance(meta, dict):
        return {}
    kept = {k: meta[k] for k in ("width", "height") if _dimension(meta.get(k))}
    if type(meta.get("unconfined")) is bool:
        kept["unconfined"] = meta["unconfined"]
    if isinstance(meta.get("alt"), str):  # the templates escape it into <img alt="...">
        kept["alt"] = " ".join(meta["alt"].split())[:MAX_ALT]
    return kept


def _left_as_released(cell) -> bool:
    """nbgrader's checksum says the student did not change this cell."""
    checksum = cell.get("metadata", {}).get("nbgrader", {}).get("checksum")
    try:
        return checksum is not None and checksum == compute_checksum(cell)
    except Exception:  # noqa: BLE001 - incomplete nbgrader metadata
        return False


def _removed_note(what: str) -> str:
    return f"[{what} removed from this output: not shown in grading]"


class SanitizeSubmission(Preprocessor):
    """Make a notebook's outputs and markdown inert for nbconvert's HTML (see module docstring)."""

    # nbconvert preprocessors are disabled by default, and nbgrader registers the classes listed in
    # Autograde.autograde_preprocessors without enabling them: this one must run wherever listed.
    enabled = Bool(True, help="Whether to sanitize (listed as a preprocessor, it should).").tag(config=True)

    removed_note = Unicode(
        "Scripts, frames or inline graphics", help="Named in the note left where active content was removed."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        # Widget state goes to a renderer loaded from a CDN that builds HTML from it.
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if "execution_count" in cell:
            cell.execution_count = _count(cell.get("execution_count"))
        if cell.cell_type == "markdown":
            attachments = self._image_attachments(cell)
            if attachments:
                cell.attachments = attachments
            else:
                cell.pop("attachments", None)
            unchanged = _left_as_released(cell)
            try:
                cell.source = safe_markdown(_text(cell.source), attachments)
            except Exception:  # noqa: BLE001 - never drop a submission over how it looks
                self.log.warning("Markdown cell %d could not be sanitized; it is hidden", index, exc_info=True)
                cell.source = _UNSHOWABLE
            if unchanged:
                # nbgrader scores an answer left as released 0 ("No response.") by its checksum
                cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
        elif cell.cell_type == "raw":
            cell.source = clean_html(_text(cell.source))
        elif cell.cell_type == "code":
            cell.outputs = [out for out in map(self._sanitize_or_replace, cell.get("outputs", [])) if out is not None]
        return cell, resources

    @staticmethod
    def _image_attachments(cell) -> dict:
        """Attachments become <img src="data:..."> in markdown: images only, base64 only."""
        kept = {}
        for name, bundle in (cell.get("attachments") or {}).items():
            if not isinstance(bundle, dict):
                continue
            images = {
                mime: _text(data)
                for mime, data in bundle.items()
                if mime in (*_IMAGE_TYPES, "image/svg+xml") and _BASE64.fullmatch(_text(data))
            }
            if images:
                kept[str(name)] = images
        return kept

    def _sanitize_or_replace(self, output):
        try:
            return self.sanitize_output(output)
        except Exception:  # noqa: BLE001 - never drop a submission over how it looks
            self.log.warning("An output could not be sanitized; only its plain text is kept", exc_info=True)
        # Keep the plain text: nbgrader reads a test cell's score from an execute_result's.
        kind = output.get("output_type")
        plain = (output.get("data") or {}).get("text/plain") if isinstance(output.get("data"), dict) else None
        note = "[This output could not be checked: not shown in grading]"
        if kind == "execute_result" and isinstance(plain, str):
            return nbformat.v4.new_output("execute_result", data={"text/plain": plain}, execution_count=None)
        return nbformat.v4.new_output("display_data", data={"text/plain": plain if isinstance(plain, str) else note})

    def sanitize_output(self, output):
        """A copy of ``output`` with only inert content, or None to drop it."""
        kind = output.get("output_type")
        if kind not in _OUTPUT_FIELDS:
            return None
        output = nbformat.from_dict({"output_type": kind, **{k: output[k] for k in _OUTPUT_FIELDS[kind] if k in output}})
        if kind == "stream":
            output.name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
            output.text = _text(output.get("text", ""))
            return output
        if kind == "error":
            output.ename = _text(output.get("ename", ""))
            output.evalue = _text(output.get("evalue", ""))
            output.traceback = [_text(line) for line in output.get("traceback") or []]
            return output
        if kind == "execute_result":
            output.execution_count = _count(output.get("execution_count"))
        data, metadata = self._sanitize_bundle(output.get("data") or {}, output.get("metadata") or {})
        output.data, output.metadata = nbformat.from_dict(data), nbformat.from_dict(metadata)
        return output

    def _sanitize_bundle(self, data: dict, metadata: dict) -> tuple[dict, dict]:
        kept: dict = {}
        removed = False
        for mime, value in data.items():
            if mime in _TEXT_TYPES:
                kept[mime] = value if mime == "application/json" else _text(value)
            elif mime in _IMAGE_TYPES and valid_base64_image(mime, _text(value)):
                kept[mime] = _text(value)
            elif mime == "image/svg+xml" and (svg := sanitize_svg(_text(value))) is not None:
                kept[mime] = svg
            elif mime in ("text/html", "text/markdown"):
                html = _text(value) if mime == "text/html" else render_markdown(_text(value), anchors=False)
                cleaned, dropped = _clean_html(html)
                if dropped:
                    removed = True
                    if not BeautifulSoup(cleaned, "html.parser").get_text(strip=True) and "<img" not in cleaned:
                        cleaned = ""  # nothing left to see (a plotly figure is an empty <div>)
                    note = f"<p><em>{html_escape(_removed_note(self.removed_note))}</em></p>"
                    cleaned = f"{cleaned}{note}" if cleaned else note
                # text/markdown is shown as the HTML it renders to
                kept["text/html"] = cleaned if mime == "text/html" or "text/html" not in kept else kept["text/html"]
            else:
                # application/javascript, widget views, and any mimetype a template might trust
                removed = True
                self.log.debug("Removed %s output", mime)
        if not kept and removed:
            kept["text/plain"] = _removed_note("JavaScript or other active content")
        meta = {mime: _image_metadata(metadata.get(mime)) for mime in kept if mime in _IMAGE_TYPES}
        meta = {mime: m for mime, m in meta.items() if m}
        meta.update(_image_metadata(metadata))  # top-level width/height also apply to images
        return kept, meta
