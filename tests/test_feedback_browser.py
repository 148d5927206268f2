"""The feedback page as a student sees it: opened offline in headless Chromium.

The feedback of the full-marks and a partial submission, from the session's grading of Puzzle 1's
whole corpus (real `nbgrader autograde` and `generate_feedback`, ``conftest.graded_course``): each page is opened in Chromium with
networking off (no name resolves, every request goes to a proxy that is not there) and
screenshotted. From the screenshot: every histogram is drawn (the bars' colour fills part of
each figure). From the DOM: no verdict or other output is clipped, the math is MathML and no raw
TeX is left, and the summary of points per part sits on top, in notebook order, with working links.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image

from test_inert_browser import chromium_command, needs_chromium

FULL, PARTIAL = "full-marks", "partial-nan-and-layernorm"
HISTOGRAMS_IN_FULL_MARKS = 8  # plot_histogram in cells 12, 14, 18, 26, 31 and three times in 42
WIDTH = 900  # a laptop's browser window; verdicts must wrap within it
BAR = (0x63, 0x6E, 0xFA)  # plotly's first colour, #636efa: every histogram's bars

# Runs in the page after it loaded (the test's own script, added to a copy of the page): what a
# student would see clipped, where each figure is, how tall the page is.
PROBE = """<script>
window.addEventListener('load', function () {
  var clipped = [];
  document.querySelectorAll('div.output_subarea, div.output_area pre, div.output_text').forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1)
      clipped.push(el.tagName + ' ' + el.scrollWidth + '>' + el.clientWidth + ': ' + el.textContent.slice(0, 80));
  });
  var figures = [];
  document.querySelectorAll('div.output_png img').forEach(function (img) {
    var r = img.getBoundingClientRect();
    figures.push({x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, loaded: img.naturalWidth > 0,
                  alt: img.alt});
  });
  var out = document.createElement('pre');
  out.id = 'probe-result';
  out.hidden = true;
  out.textContent = JSON.stringify({clipped: clipped, figures: figures,
                                    height: document.documentElement.scrollHeight, text: document.body.innerText});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def feedback(graded_course):
    return graded_course


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback-screenshots")
    print(f"\nScreenshots of the feedback pages: {folder}")
    return folder


def open_offline(html: str, name: str, folder: Path) -> tuple[dict, BeautifulSoup, Image.Image]:
    """The probe's findings, the DOM, and a screenshot of the whole page."""
    page = folder / f"{name}.html"
    head, _, tail = html.rpartition("</body>")
    page.write_text(head + PROBE + "</body>" + tail)
    url = page.as_uri()
    dom = subprocess.run(chromium_command(url, folder / f"profile-{name}", f"--window-size={WIDTH},1000",
                                          "--hide-scrollbars", "--dump-dom"),
                         capture_output=True, text=True, timeout=180)
    soup = BeautifulSoup(dom.stdout, "html.parser")
    probe = json.loads(soup.find(id="probe-result").get_text())
    shot = folder / f"{name}.png"
    subprocess.run(chromium_command(url, folder / f"profile-{name}-shot", f"--window-size={WIDTH},{probe['height']}",
                                    "--hide-scrollbars", f"--screenshot={shot}"), capture_output=True, timeout=180)
    page.unlink()  # the screenshots stay; the page with the probe is not the feedback
    return probe, soup, Image.open(shot).convert("RGB")


def bar_pixels(image: Image.Image, box: dict) -> int:
    region = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["w"]), int(box["y"] + box["h"])))
    pixels = region.tobytes()
    return sum(1 for i in range(0, len(pixels), 3) if all(abs(pixels[i + k] - BAR[k]) <= 16 for k in range(3)))


@needs_chromium
@pytest.mark.parametrize("student", [FULL, PARTIAL])
def test_feedback_reads_offline(feedback, screenshots, student):
    html = feedback.feedback(student)
    size = len(html.encode())
    print(f"{student}: feedback {size / 1e6:.2f} MB")
    assert size < 2_000_000
    probe, soup, shot = open_offline(html, student, screenshots)

    # Every figure the notebook drew is an image, with bars drawn where the page shows it.
    figures = probe["figures"]
    assert figures and all(f["loaded"] for f in figures), figures
    if student == FULL:
        assert len(figures) == HISTOGRAMS_IN_FULL_MARKS
    assert shot.size[1] >= max(f["y"] + f["h"] for f in figures), "the screenshot misses part of the page"
    bars = [bar_pixels(shot, f) for f in figures]
    assert all(n > 1500 for n in bars), f"bar pixels per figure: {bars}"
    assert "not shown" not in probe["text"]
    # A screen reader names each figure by its title.
    assert all(f["alt"].startswith("Figure: ") for f in figures), [f["alt"] for f in figures]
    assert any("GPT-Neo: pairwise cosine similarity of token embeddings" in f["alt"] for f in figures)

    # Nothing scrolls sideways: verdicts and other outputs wrap.
    assert probe["clipped"] == []

    # Math is MathML, not TeX waiting for a CDN.
    assert len(soup.find_all("math")) > 10
    assert not re.search(r"\$\\cos|\\hat|\\frac|\\lVert", probe["text"])

    # The summary on top: the parts in notebook order, their points adding up to the score.
    summary = soup.find("div", class_="interp-summary")
    first_cell = soup.find("div", class_="cell")
    assert summary is not None and first_cell.find("div", class_="interp-summary") is summary
    titles = [tr.find("td").get_text() for tr in summary.find("tbody").find_all("tr")]
    assert [t.split(" —")[0] for t in titles] == ["Part 1", "Part 2", "Part 3", "Part 4"]
    anchors = {a["name"] for a in soup.find_all("a", attrs={"name": True})}
    assert {a["href"][1:] for a in summary.find_all("a")} <= anchors
    total = summary.find("tfoot").find_all("td")[1].get_text()
    score = re.search(r"\(Score: ([\d.]+) / ([\d.]+)\)", soup.find("h4").get_text())
    assert [float(x) for x in total.split(" / ")] == [float(score[1]), float(score[2])]

    # A failed check names the input it failed on and how far off it was.
    lines = probe["text"].splitlines()
    if student == PARTIAL:
        failed = [i for i, line in enumerate(lines) if line.strip().startswith("✗ 0/")]
        assert failed, "no failed item in the partial submission's feedback"
        details = " ".join(lines[i + 1] for i in failed)
        assert re.search(r"input \S+ of shape \[\d+(, \d+)*\]: (largest error [\d.e+-]+|\d+ NaN/inf values)", details), details
    else:
        assert not any(line.strip().startswith("✗") for line in lines)
