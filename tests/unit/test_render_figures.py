"""RenderFigures' own decisions, without drawing: what it sends to the sandbox and what it leaves.

The drawing itself (kaleido and Chromium in bubblewrap) is exercised end to end by
tests/test_feedback_browser.py, which counts the bars of every histogram in a screenshot.
"""

from __future__ import annotations

import base64
import time

from nbformat.v4 import new_output

from interp_course.preprocessors.render_figures import RenderFigures, _title
from interp_course.preprocessors.sanitize_submission import SanitizeSubmission

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
FIGURE = {"data": [{"type": "bar", "x": [1, 2], "y": [3, 4]}], "layout": {"title": {"text": "GPT-Neo: norms"}}}


def test_only_plotly_figures_of_bounded_size_and_number_are_sent_to_be_drawn():
    render = RenderFigures(max_figures=2, max_figure_bytes=1000)
    assert render._admit(FIGURE, 0) is FIGURE
    assert render._admit(FIGURE, 2) == "only the first 2 figures of a notebook are drawn"
    assert render._admit("<script>", 0) == "it is not a plotly figure"
    big = {"data": [{"type": "bar", "y": list(range(1000))}]}
    assert render._admit(big, 0).startswith("it is too large to draw (4 kB of data")


def test_a_drawn_figure_becomes_an_image_the_sanitizer_keeps():
    output = new_output("display_data", data={"application/vnd.plotly.v1+json": FIGURE})
    RenderFigures._replace(output, PNG_1PX, _title(FIGURE), "", 600)
    assert dict(output.data) == {"image/png": base64.b64encode(PNG_1PX).decode(), "text/plain": "Figure: GPT-Neo: norms"}
    # shown at the figure's width on the page, whatever its pixels per CSS px
    assert dict(output.metadata) == {"image/png": {"width": 600, "height": 600, "alt": "Figure: GPT-Neo: norms"}}
    assert SanitizeSubmission().sanitize_output(output) == output


def test_a_figure_not_drawn_leaves_a_note_saying_why():
    output = new_output("display_data", data={"application/vnd.plotly.v1+json": FIGURE})
    RenderFigures._replace(output, None, "GPT-Neo: norms", "it is too large to draw", 600)
    assert dict(output.data) == {"text/plain": "[Figure: GPT-Neo: norms not shown: it is too large to draw]"}
    assert _title({"layout": {"title": "plain"}}) == "plain" and _title({"layout": []}) == ""


def test_drawn_figures_are_kept_by_their_exact_input_and_settings_within_a_memory_bound():
    from interp_course.sandbox.figures import DrawnFigures

    kept = DrawnFigures(max_bytes=10)
    a, b = DrawnFigures.key('{"data": []}', 800, 450), DrawnFigures.key('{"data": [] }', 800, 450)
    assert a != b and a != DrawnFigures.key('{"data": []}', 800, 451)  # other bytes, other settings: drawn anew
    kept.put(a, b"png-a")
    kept.put(b, b"png-bb")
    assert kept.get(a) is None and kept.get(b) == b"png-bb"  # the oldest went to stay within 10 bytes
    kept.put(a, b"x" * 11)  # larger than the bound: not kept
    assert kept.get(a) is None and kept.size == 6


def test_worker_threads_draw_the_same_figure_once_and_different_ones_side_by_side(monkeypatch):
    """The local workers are threads of one process: the second to need a figure waits for the
    first's drawing rather than starting a second Chromium; different figures do not wait."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from interp_course.sandbox import figures

    monkeypatch.setattr(figures, "drawn", figures.DrawnFigures())
    calls, both_drawing = [], threading.Barrier(2, timeout=30)

    def sandbox(texts, *args, **kwargs):  # the Chromium sandbox's part, with its inputs recorded
        calls.append(texts)
        if json.loads(texts[0])["layout"]["title"]["text"] != "same":
            both_drawing.wait()  # both different figures are being drawn at once (else: BrokenBarrierError)
        else:
            time.sleep(0.3)
        return [PNG_1PX] * len(texts)

    monkeypatch.setattr(figures, "_draw_in_sandbox", sandbox)
    settings = dict(manager=None, width=600, height=400, scale=2, font_size=16, timeout=60, memory_mb=512,
                    max_png_bytes=10**6, chromium="chromium", log=None)

    def figure(title):
        return {**FIGURE, "layout": {"title": {"text": title}}}

    with ThreadPoolExecutor(2) as pool:
        same = list(pool.map(lambda _: figures.draw([figure("same")], **settings), range(2)))
    assert same == [[PNG_1PX], [PNG_1PX]] and len(calls) == 1
    with ThreadPoolExecutor(2) as pool:
        different = list(pool.map(lambda title: figures.draw([figure(title)], **settings), ["a", "b"]))
    assert different == [[PNG_1PX], [PNG_1PX]] and len(calls) == 3
