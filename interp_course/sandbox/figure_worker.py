"""Draw plotly figures as PNG files: the program ``interp_course.sandbox.figures`` runs in a sandbox.

``python -m interp_course.sandbox.figure_worker IN OUT WIDTH HEIGHT SCALE FONT_SIZE MAX_BYTES`` reads
``IN/<n>.json`` (plotly figure dicts, in the order of their names) and writes ``OUT/<n>.png`` with
kaleido, one headless Chromium for all of them. WIDTH and HEIGHT are the figure's size on the page
(CSS px), SCALE the image's pixels per CSS px (sharp on a phone's or a laptop's dense screen); an
image over MAX_BYTES is drawn again at one pixel per CSS px. A figure that fails is skipped; the
grader notes it.

Nothing here is trusted by the grader: it runs on student data, in a bubblewrap sandbox with no
network, and the grader checks every file it leaves before using it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import textwrap
from pathlib import Path

# Debian's chromium (BROWSER_PATH overrides); the /usr/bin/chromium wrapper script reads
# /etc/chromium.d, which the sandbox does not have.
CHROMIUM = "/usr/lib/chromium/chromium"
TITLE_SCALE = 1.4  # plotly.js draws a title 1.4 times the layout's font size
MARGIN = 20  # CSS px on each side where the figure sets none; tick labels and the title push it out
CHAR_WIDTH = 0.5  # a title's average character width, in ems (wide enough for capitals and digits)
AXIS = re.compile(r"[xy]axis\d*")


def _number(value) -> bool:
    return type(value) in (int, float) and 0 < value < 1000


def legible(figure: dict, width: int, font_size: int) -> dict:
    """``figure`` laid out to be read where a phone shows it (a 390 px screen shows the page's
    figures ~374 px wide): its text at least ``font_size``, small margins where it sets none (its
    axes' labels widen them: automargin, which plotly's templates set and a figure without one
    lacks), and a long title wrapped to ``width`` (plotly never wraps one; it would run off the image)."""
    layout = figure.get("layout")
    if not isinstance(layout, dict):
        layout = figure["layout"] = {}
    font = layout["font"] = layout.get("font") if isinstance(layout.get("font"), dict) else {}
    font["size"] = max(font["size"], font_size) if _number(font.get("size")) else font_size
    margin = layout["margin"] = layout.get("margin") if isinstance(layout.get("margin"), dict) else {}
    for side in "lrtb":
        margin.setdefault(side, MARGIN)
    for name in {"xaxis", "yaxis", *(key for key in layout if AXIS.fullmatch(key))}:
        axis = layout[name] = layout.get(name) if isinstance(layout.get(name), dict) else {}
        axis.setdefault("automargin", True)
    title = layout.get("title")
    title = {"text": title} if isinstance(title, str) else title
    if isinstance(title, dict) and isinstance(title.get("text"), str):
        layout["title"] = _wrapped_title(title, width, font["size"])
    return figure


def _wrapped_title(title: dict, width: int, font_size: float) -> dict:
    """The title on as many lines as it needs, pushing the plot down rather than overlapping it."""
    title_font = title.get("font") if isinstance(title.get("font"), dict) else {}
    size = title_font["size"] if _number(title_font.get("size")) else font_size * TITLE_SCALE
    if "<" not in title["text"]:  # plotly's own markup (<br>, <b>) is left as written
        chars = max(10, int((width - 3 * MARGIN) / (CHAR_WIDTH * size)))
        title["text"] = "<br>".join(textwrap.wrap(title["text"], chars)) or title["text"]
    if "y" not in title and "yref" not in title:
        title.update(automargin=True, yref="paper")
    return title


async def draw(folder_in: Path, folder_out: Path, width: int, height: int, scale: float, font_size: int,
               max_bytes: int) -> None:
    import kaleido

    names = sorted((p for p in folder_in.glob("*.json")), key=lambda p: int(p.stem))
    # mathjax=False: kaleido would load MathJax from a CDN; the page has no network anyway.
    # Chromium's own sandbox needs user namespaces, which bubblewrap has already used and
    # disabled; kaleido starts it with --no-sandbox, --disable-gpu and --headless.
    async with kaleido.Kaleido(n=1, timeout=30, mathjax=False, path=os.environ.get("BROWSER_PATH", CHROMIUM)) as k:
        for path in names:
            try:
                fig = legible(json.loads(path.read_text()), width, font_size)
                for each in (scale, 1) if scale > 1 else (scale,):  # a dense image (a large heatmap) may be too big
                    png = await k.calc_fig(fig, opts={"format": "png", "width": width, "height": height, "scale": each})
                    if len(png) <= max_bytes:
                        break
            except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the others
                print(f"figure {path.stem}: {type(exc).__name__}", file=sys.stderr)
                continue
            (folder_out / f"{path.stem}.png").write_bytes(png)


def main(argv: list[str]) -> None:
    folder_in, folder_out = Path(argv[0]), Path(argv[1])
    width, height, scale, font_size, max_bytes = int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5]), int(argv[6])
    asyncio.run(draw(folder_in, folder_out, width, height, scale, font_size, max_bytes))


if __name__ == "__main__":
    main(sys.argv[1:])
