"""The feedback page as a student sees it: opened offline in headless Chromium, on a phone and a laptop.

The feedback of the full-marks and a partial submission, from the session's grading of Puzzle 1's
whole corpus (real `nbgrader autograde` and `generate_feedback`, ``conftest.graded_course``): each
page is opened in Chromium (Debian's, driven by Playwright) with networking off (no name resolves,
every request goes to a proxy that is not there, and any request but the page's own file is
refused and recorded) in a 390 px wide window (a phone) and a 1280 px one (a laptop), and
screenshotted whole. From the screenshot: every histogram is drawn (the bars' colour fills part of
each figure). From the page: figures fit the width with text of at least 9 px, nothing is wider
than the window (the document's width, and every element's right edge), nothing is clipped or
scrolls sideways, the math is MathML and no raw TeX is left, one points summary (the package's)
sits on top, in notebook order, with working links, no ``Out[n]`` prompt or stray score follows a
verdict, hints show a disclosure triangle, and no emoji is left to show as an empty box.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser tests)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

FULL, PARTIAL = "full-marks", "partial-nan-and-layernorm"
PHONE, LAPTOP = 390, 1280  # window widths, CSS px
HISTOGRAMS_IN_FULL_MARKS = 8  # plot_histogram in cells 12, 14, 18, 26, 31 and three times in 42
FIGURE_WIDTH, FIGURE_FONT = 600, 16  # RenderFigures' figures on the page and their least text, CSS px
LEGIBLE = 9  # CSS px: the smallest text a phone's reader should get
BAR = (0x63, 0x6E, 0xFA)  # plotly's first colour, #636efa: every histogram's bars
# Emoji, which show as empty boxes where no emoji font is installed (the notebook rates each
# exercise with coloured circles).
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u26FF\u2700-\u27BF\uFE0F]")
NOT_EMOJI = set("✓✗✔★⚠")  # marks in every text font (DejaVu), kept on purpose

# Run in the page once it has loaded: what a student would see clipped or sideways, where each
# figure is, how the page is laid out.
PROBE = """() => {
  const vw = window.innerWidth, wide = [], clipped = [], figures = [];
  document.querySelectorAll('body *').forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1) wide.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right) + ': ' +
                                                 el.textContent.slice(0, 60));
  });
  document.querySelectorAll('div.output_subarea, div.output_area pre, div.output_text, div.input_area, pre').forEach(el => {
    if (el.scrollWidth > el.clientWidth + 1)
      clipped.push(el.tagName + ' ' + el.scrollWidth + '>' + el.clientWidth + ': ' + el.textContent.slice(0, 80));
  });
  document.querySelectorAll('div.output_png img').forEach(img => {
    const r = img.getBoundingClientRect();
    figures.push({x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, loaded: img.naturalWidth > 0,
                  alt: img.alt});
  });
  const summaries = [...document.querySelectorAll('details > summary')].map(s => getComputedStyle(s).display);
  return {viewport: vw, width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
          wide: wide, clipped: clipped, figures: figures, summaries: summaries, text: document.body.innerText,
          code_wraps: [...document.querySelectorAll('div.input_area pre')].every(p => getComputedStyle(p).whiteSpace === 'pre-wrap')};
}"""


@pytest.fixture(scope="module")
def feedback(graded_course):
    return graded_course


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback-screenshots")
    print(f"\nScreenshots of the feedback pages: {folder}")
    return folder


@pytest.fixture(scope="module")
def chromium():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            # networking off: no name resolves, and anything else goes to a proxy that is not there
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"])
        yield browser
        browser.close()


def open_offline(chromium, html_file: Path, width: int, shot: Path) -> tuple[dict, list[str], Image.Image]:
    """The probe's findings, the requests the page tried to make, and a screenshot of the whole page."""
    context = chromium.new_context(viewport={"width": width, "height": 900})
    requests: list[str] = []
    context.route("**/*", lambda route: route.continue_() if route.request.url == html_file.as_uri()
                  else (requests.append(route.request.url), route.abort()))
    page = context.new_page()
    page.goto(html_file.as_uri())
    page.wait_for_load_state("load")
    probe = page.evaluate(PROBE)
    page.screenshot(path=shot, full_page=True)
    context.close()
    return probe, requests, Image.open(shot).convert("RGB")


def bar_pixels(image: Image.Image, box: dict) -> int:
    region = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["w"]), int(box["y"] + box["h"])))
    pixels = region.tobytes()
    return sum(1 for i in range(0, len(pixels), 3) if all(abs(pixels[i + k] - BAR[k]) <= 16 for k in range(3)))


@pytest.mark.parametrize("width", [PHONE, LAPTOP])
@pytest.mark.parametrize("student", [FULL, PARTIAL])
def test_feedback_reads_offline_on_a_phone_and_a_laptop(feedback, chromium, screenshots, student, width):
    html = feedback.feedback(student)
    size = len(html.encode())
    print(f"{student}: feedback {size / 1e6:.2f} MB")
    assert size < 2_000_000
    page_file = feedback.root / "feedback" / student / feedback.assignment / f"{feedback.notebook}.html"
    probe, requests, shot = open_offline(chromium, page_file, width, screenshots / f"{student}-{width}.png")
    soup = BeautifulSoup(html, "html.parser")
    print(f"{student} at {width} px: the page is {probe['width']} px wide, {probe['height']} px tall")

    # Self-contained: the page asks for nothing, not even a font or a script.
    assert requests == []

    # Nothing wider than the window: no sideways scrolling, no element past its right edge, and
    # no code, output or verdict clipped inside its box (long lines wrap).
    assert probe["viewport"] == width
    assert probe["width"] <= width, probe["wide"][:10]
    assert probe["wide"] == []
    assert probe["clipped"] == []
    assert probe["code_wraps"]

    # Every figure the notebook drew is an image, fitted to the width, with bars drawn where the
    # page shows it.
    figures = probe["figures"]
    assert figures and all(f["loaded"] for f in figures), figures
    if student == FULL:
        assert len(figures) == HISTOGRAMS_IN_FULL_MARKS
    assert all(f["x"] >= 0 and f["x"] + f["w"] <= width + 1 for f in figures), figures
    assert all(f["w"] == pytest.approx(min(FIGURE_WIDTH, f["w"]), abs=1) for f in figures)
    if width == LAPTOP:
        assert all(f["w"] == pytest.approx(FIGURE_WIDTH, abs=1) for f in figures)  # at their own size
    # Their text legible: drawn FIGURE_FONT px at the figure's full width, it scales with the image
    # (tests/unit/test_figures_on_a_phone.py measures it in the drawn image).
    assert all(FIGURE_FONT * f["w"] / FIGURE_WIDTH >= LEGIBLE for f in figures), [f["w"] for f in figures]
    assert shot.size[1] >= max(f["y"] + f["h"] for f in figures), "the screenshot misses part of the page"
    scale = (min(figures[0]["w"], FIGURE_WIDTH) / FIGURE_WIDTH) ** 2  # bars scale with the image's area
    bars = [bar_pixels(shot, f) for f in figures]
    assert all(n > 1500 * scale for n in bars), f"bar pixels per figure: {bars}"
    assert "not shown" not in probe["text"]
    # A screen reader names each figure by its title.
    assert all(f["alt"].startswith("Figure: ") for f in figures), [f["alt"] for f in figures]
    assert any("GPT-Neo: pairwise cosine similarity of token embeddings" in f["alt"] for f in figures)

    # Math is MathML, not TeX waiting for a CDN.
    assert len(soup.find_all("math")) > 10
    assert not re.search(r"\$\\cos|\\hat|\\frac|\\lVert", probe["text"])

    # One points summary, the package's, on top: the parts in notebook order, their points adding
    # up to the score; nbgrader's own list of "Test cell" / "Written response" links is not there.
    summaries = soup.find_all("div", class_="interp-summary")
    assert len(summaries) == 1
    summary = summaries[0]
    assert soup.find(id="toc") is None
    assert not re.search(r"^(Test cell|Written response|Coding free-response)\b", probe["text"], re.M)
    first_cell = soup.find("div", class_="cell")
    assert first_cell.find("div", class_="interp-summary") is summary
    titles = [tr.find("td").get_text() for tr in summary.find("tbody").find_all("tr")]
    assert [t.split(" —")[0] for t in titles] == ["Part 1", "Part 2", "Part 3", "Part 4"]
    anchors = {a["name"] for a in soup.find_all("a", attrs={"name": True})}
    assert {a["href"][1:] for a in summary.find_all("a")} <= anchors
    total = summary.find("tfoot").find_all("td")[1].get_text()
    score = re.search(r"\(Score: ([\d.]+) / ([\d.]+)\)", soup.find("h4").get_text())
    assert [float(x) for x in total.split(" / ")] == [float(score[1]), float(score[2])]

    # No prompts, and no stray score under a verdict (the execute_result that carried it to nbgrader).
    assert "Out[" not in probe["text"] and "In [" not in probe["text"]
    assert soup.find(class_="prompt") is None
    verdicts = [pre for pre in soup.find_all("pre") if re.match(r"test_\w+: [\d.]+ / [\d.]+ points", pre.get_text())]
    assert len(verdicts) == 10
    assert all(pre.find_parent("div", class_="output").find(class_="output_execute_result") is None for pre in verdicts)
    lines = [line.strip() for line in probe["text"].splitlines()]

    # Hints (<details>) show their disclosure triangle; no emoji is left to show as an empty box.
    assert probe["summaries"] and set(probe["summaries"]) == {"list-item"}
    assert set(EMOJI.findall(probe["text"])) <= NOT_EMOJI, set(EMOJI.findall(probe["text"]))
    assert re.search(r"Difficulty\s*[●○]{5}\s*\d/5", probe["text"])

    # A failed check names the input it failed on and how far off it was; a missed number computed
    # with a wrong function of the student's names that function first.
    if student == PARTIAL:
        failed = [i for i, line in enumerate(lines) if line.startswith("✗ 0/")]
        assert failed, "no failed item in the partial submission's feedback"
        details = " ".join(lines[i + 1] for i in failed)
        assert re.search(r"input \S+ of shape \[\d+(, \d+)*\]: (largest error [\d.e+-]+|\d+ NaN/inf values)", details), details
        # (its center() is wrong): the centred mean's hint names center() as the cause (the check's
        # own diagnosis, or "This is computed with your center(), which lost points in test_center"),
        # and never only tells the student to use their center(), which they did
        (centred,) = [lines[i + 1] for i in failed if "`neo_centered_mean_cos`" in lines[i]]
        assert "center" in centred, centred
        assert "This is computed with your center()" in centred or "with your center() first" not in centred, centred
    else:
        assert not any(line.startswith("✗") for line in lines)
