"""Figures as a student reads them on the feedback page, on a 390 px phone and a 1280 px laptop.

The notebook's own ``plot_histogram`` makes the figure, as the grading kernel emits it; the figure
worker draws it with RenderFigures' settings (the production drawing code, run here without its
bubblewrap sandbox, which tests/test_figure_sandbox.py covers); the image goes on a feedback page
built as generate_feedback builds it, and headless Chromium says how wide the page shows it. The
text a student reads is the tick labels' height in the image, scaled to that width.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from interp_course.preprocessors.render_figures import RenderFigures
from interp_course.sandbox import figure_worker
from interp_course.sandbox.figure_worker import legible
from interp_course.security.images import png_size

PHONE, LAPTOP = 390, 1280  # window widths, CSS px
LEGIBLE = 9  # CSS px: the smallest text a phone's reader should get
DIGIT_HEIGHT = 0.7  # a digit's height in ems, in the sans-serif fonts Chromium falls back to (0.72-0.73)
NOTEBOOK = Path(__file__).parents[2] / "source" / "puzzle1" / "puzzle1.ipynb"
LONG_TITLE = "GPT-Neo: cosine similarity of each token with the mean embedding (mean 0.300)"

needs_chromium = pytest.mark.skipif(not (os.path.isfile(RenderFigures().chromium) and shutil.which("chromium")),
                                    reason="chromium is not installed (apt-get install -y chromium)")


# ------------------------------------------------------------------------------ the layout
def test_a_figure_gets_legible_text_small_margins_and_a_title_wrapped_to_its_width():
    figure = legible({"data": [], "layout": {"title": {"text": LONG_TITLE}}}, width=600, font_size=16)
    layout = figure["layout"]
    assert layout["font"] == {"size": 16} and layout["margin"] == {"l": 20, "r": 20, "t": 20, "b": 20}
    lines = layout["title"]["text"].split("<br>")
    assert len(lines) == 2 and " ".join(lines) == LONG_TITLE
    assert all(len(line) * 0.5 * 16 * 1.4 <= 600 - 60 for line in lines)  # half an em a character fits
    assert layout["title"]["automargin"] is True  # the second line pushes the plot down, not over it
    assert layout["xaxis"] == layout["yaxis"] == {"automargin": True}  # tick labels widen the small margins


def test_what_the_figure_says_itself_is_kept_where_it_is_legible():
    layout = {"font": {"size": 20, "family": "serif"}, "margin": {"l": 200}, "yaxis2": {"automargin": False},
              "title": {"text": "<b>bold</b> " + LONG_TITLE, "y": 0.9}}
    figure = legible({"layout": copy.deepcopy(layout)}, width=600, font_size=16)["layout"]
    assert figure["font"] == {"size": 20, "family": "serif"}
    assert figure["margin"] == {"l": 200, "r": 20, "t": 20, "b": 20}
    assert figure["yaxis2"] == {"automargin": False} and figure["xaxis"] == {"automargin": True}
    assert figure["title"] == layout["title"]  # plotly markup and a placed title: as written
    assert legible({"layout": {"font": {"size": 8}}}, 600, 16)["layout"]["font"] == {"size": 16}
    assert legible({"layout": {"title": "plain"}}, 600, 16)["layout"]["title"]["text"] == "plain"
    assert legible({"layout": ["not", "a", "layout"]}, 600, 16)["layout"]["font"] == {"size": 16}


# ------------------------------------------------------------------ as a student sees it
def as_the_kernel_emits(figure) -> dict:
    import plotly.io as pio

    return pio.renderers["plotly_mimetype"].to_mimebundle(figure.to_dict())["application/vnd.plotly.v1+json"]


def notebook_histogram(values: np.ndarray, title: str) -> dict:
    """The notebook's ``plot_histogram(values, title)``, as the grading kernel emits it."""
    import plotly.express as px
    import torch

    setup = next("".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]
                 if "def plot_histogram" in "".join(c["source"]))
    helper = next(node for node in ast.parse(setup).body
                  if isinstance(node, ast.FunctionDef) and node.name == "plot_histogram")
    scope = {"px": px, "torch": torch}
    exec(compile(ast.Module([helper], type_ignores=[]), "plot_histogram", "exec"), scope)
    return as_the_kernel_emits(scope["plot_histogram"](torch.from_numpy(values), title))


def draw(figures: list[dict], render: RenderFigures, folder: Path, monkeypatch) -> list[bytes | None]:
    """What the figure sandbox leaves for these figures, drawn with ``render``'s settings."""
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    for n, figure in enumerate(figures):
        (folder / "in" / f"{n}.json").write_text(json.dumps(figure))
    monkeypatch.setenv("BROWSER_PATH", render.chromium)
    figure_worker.main([str(folder / "in"), str(folder / "out"), *map(str, (
        render.width, render.height, render.scale, render.font_size, render.max_png_bytes))])
    return [(folder / "out" / f"{n}.png").read_bytes() if (folder / "out" / f"{n}.png").exists() else None
            for n in range(len(figures))]


def tick_label_rows(png: bytes, without_x_tick_labels: bytes) -> int:
    """The height, in image pixels, of the x axis' tick labels: what differs from the same figure
    drawn with them transparent."""
    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(data)).convert("RGB") for data in (png, without_x_tick_labels))
    differs = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 64 else 0)
    left, top, right, bottom = differs.getbbox()
    assert right - left > a.width / 2 and top > a.height / 2, "not the x axis' labels"
    return bottom - top


def feedback_page(png: bytes, title: str, render: RenderFigures) -> str:
    """A feedback page holding the figure, as generate_feedback writes it."""
    import nbgrader.converters.generate_feedback as generate_feedback
    from traitlets.config import Config

    from interp_course.preprocessors.feedback_page import FeedbackExporter, FeedbackPage

    output = new_output("display_data", data={"application/vnd.plotly.v1+json": {}})
    render._replace(output, png, title, "", render.width)
    formgrader = os.path.join(os.path.dirname(generate_feedback.__file__), "..", "server_extensions", "formgrader")
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [os.path.join(formgrader, "templates")]
    bootstrap = os.path.join(formgrader, "static", "node_modules", "bootstrap", "dist", "css")
    config.HTMLExporter.extra_template_paths = [bootstrap]
    exporter = FeedbackExporter(config=config)
    exporter.register_preprocessor(FeedbackPage)
    graded = new_notebook(cells=[new_code_cell("plot_histogram(cos_sub, title)", outputs=[output])])
    resources = {"nbgrader": {"notebook": "puzzle1", "score": 18.0, "max_score": 25.0, "late_penalty": 0}}
    return exporter.from_notebook_node(graded, resources)[0]


def shown_widths(page: Path) -> dict[int, dict]:
    """The figure's box on the page, by window width."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser tests)")
    boxes = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        for width in (PHONE, LAPTOP):
            context = browser.new_context(viewport={"width": width, "height": 900})
            tab = context.new_page()
            tab.goto(page.as_uri())
            boxes[width] = tab.evaluate("() => { const r = document.querySelector('div.output_png img')"
                                        ".getBoundingClientRect(); return {left: r.left, width: r.width}; }")
            context.close()
        browser.close()
    return boxes


@needs_chromium
def test_figure_text_is_legible_on_a_phone_and_not_oversized_on_a_laptop(tmp_path, monkeypatch):
    render = RenderFigures()
    values = np.random.default_rng(0).normal(0.3, 0.1, 100_000).astype(np.float32)
    figure = notebook_histogram(values, "GPT-Neo: cosine similarity of each token with the mean embedding")
    no_x_tick_labels = copy.deepcopy(figure)
    no_x_tick_labels["layout"]["xaxis"]["tickfont"] = {"color": "rgba(0,0,0,0)"}
    png, without_labels = draw([figure, no_x_tick_labels], render, tmp_path, monkeypatch)

    assert png_size(png) == (render.width * render.scale, render.height * render.scale)  # sharp on dense screens
    assert len(png) <= render.max_png_bytes
    rows = tick_label_rows(png, without_labels)
    page = tmp_path / "puzzle1.html"
    page.write_text(feedback_page(png, "histogram", render))
    boxes = shown_widths(page)

    def font_px(window: int) -> float:  # the tick labels' font size as shown, CSS px
        return rows * boxes[window]["width"] / png_size(png)[0] / DIGIT_HEIGHT

    print(f"tick labels: {font_px(PHONE):.1f} px on a phone ({boxes[PHONE]['width']:.0f} px wide), "
          f"{font_px(LAPTOP):.1f} px on a laptop; image {len(png) / 1000:.0f} kB")
    assert boxes[PHONE]["left"] >= 0 and boxes[PHONE]["left"] + boxes[PHONE]["width"] <= PHONE
    assert font_px(PHONE) >= LEGIBLE
    assert boxes[LAPTOP]["width"] == render.width  # at its own size, not stretched to the column
    assert font_px(LAPTOP) <= 2 * LEGIBLE


@needs_chromium
def test_a_dense_figure_too_large_at_two_pixels_per_px_is_drawn_at_one(tmp_path, monkeypatch):
    import plotly.express as px

    render = RenderFigures(max_png_bytes=85_000)  # this heatmap: ~100 kB at two pixels per px, ~65 kB at one
    noise = np.random.default_rng(0).normal(size=(100, 100))
    heatmap = as_the_kernel_emits(px.imshow(noise, title="pairwise cosine similarity of 100 tokens"))
    (png,) = draw([heatmap], render, tmp_path, monkeypatch)
    assert png_size(png) == (render.width, render.height) and len(png) <= render.max_png_bytes
