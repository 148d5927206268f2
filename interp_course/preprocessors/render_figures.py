"""The autograde step that turns the notebook's plotly figures into PNG images.

``GradeInSandbox`` runs it at the end of each sandboxed run (so the images are kept with the run,
and drawn where the kernel ran, beside that worker's next kernel), before ``SanitizeSubmission``:
each figure output (``application/vnd.plotly.v1+json``, what the grading kernel's plotly renderer
emits) is drawn in a sandbox (``interp_course.sandbox.figures``) and replaced by an ``image/png``
output, so the autograded notebook, formgrader and the feedback page show every figure without
plotly.js, a CDN or any of the student's script. A figure that cannot be drawn (too big, too many, time limit) becomes a
one-line note.

Sizes are for a phone first: a figure is shown ``width`` CSS px wide (the page scales it down to
fit a narrower screen, ~374 px on a 390 px phone), drawn ``scale`` image pixels per CSS px, with its
text at least ``font_size`` at full width (~10 px on that phone).
"""

from __future__ import annotations

import base64
import json

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Float, Int, Unicode

from interp_course.sandbox import figures
from interp_course.security import grader_user
from interp_course.security.images import png_size
from interp_course.sandbox.kernel_manager import SandboxedKernelManager


def _title(figure) -> str:
    title = figure.get("layout", {}).get("title") if isinstance(figure.get("layout"), dict) else None
    text = title.get("text") if isinstance(title, dict) else title
    return str(text)[:200] if isinstance(text, str) else ""


class RenderFigures(Preprocessor):
    enabled = Bool(True, help="Draw the figures (False: each becomes a note).").tag(config=True)
    width = Int(600, help="Width of a figure on the page, CSS px (a narrower screen scales it down).").tag(config=True)
    height = Int(400, help="Height of a figure on the page, in CSS px.").tag(config=True)
    scale = Float(2, help="Image pixels per CSS px (sharp on dense screens); 1 if over max_png_bytes.").tag(config=True)
    font_size = Int(16, help="Least size of a figure's text, in CSS px at the figure's full width.").tag(config=True)
    timeout = Float(120, help="Wall-clock seconds to draw all the figures of one notebook.").tag(config=True)
    memory_mb = Int(2048, help="Memory of the drawing sandbox (cgroup), in MiB.").tag(config=True)
    max_figures = Int(30, help="Figures drawn per notebook; later ones become a note.").tag(config=True)
    max_figure_bytes = Int(2_000_000, help="Largest figure (its JSON) that is drawn.").tag(config=True)
    max_png_bytes = Int(300_000, help="Largest image kept per figure.").tag(config=True)
    chromium = Unicode("/usr/lib/chromium/chromium",
                       help="The Chromium binary kaleido drives (Debian's; not the /usr/bin wrapper script).").tag(config=True)

    def preprocess(self, nb, resources):
        found = []  # (output, figure JSON or the reason it is not drawn)
        for cell in nb.cells:
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                data = output.get("data")
                if isinstance(data, dict) and figures.PLOTLY_MIME in data:
                    found.append((output, self._admit(data[figures.PLOTLY_MIME], len(found))))
        todo = [figure for _, figure in found if isinstance(figure, dict)]
        if grader_user.is_root():  # the sandbox's uid maps to ours: never draw as root
            pngs, reason = [None] * len(todo), "figures are never drawn as root"
        else:
            pngs = figures.draw(todo, SandboxedKernelManager(config=self.config), width=self.width,
                                height=self.height, scale=self.scale, font_size=self.font_size, timeout=self.timeout,
                                memory_mb=self.memory_mb, max_png_bytes=self.max_png_bytes, chromium=self.chromium,
                                log=self.log)
            reason = "it could not be drawn (the grading log says why)"
        pngs = iter(pngs)
        for output, figure in found:
            png = next(pngs) if isinstance(figure, dict) else None
            why = figure if isinstance(figure, str) else reason
            self._replace(output, png, _title(figure) if isinstance(figure, dict) else "", why, self.width)
        if found:
            self.log.info("Figures drawn: %d of %d", sum(1 for o, _ in found if "image/png" in o.data), len(found))
        return nb, resources

    def _admit(self, figure, index: int):
        """The figure as a dict to draw, or why it is not drawn."""
        if index >= self.max_figures:
            return f"only the first {self.max_figures} figures of a notebook are drawn"
        if not isinstance(figure, dict):
            return "it is not a plotly figure"
        try:
            size = len(json.dumps(figure))
        except (TypeError, ValueError):
            return "it is not a plotly figure"
        if size > self.max_figure_bytes:
            return f"it is too large to draw ({size // 1000} kB of data; bin or subsample it)"
        return figure

    @staticmethod
    def _replace(output, png: bytes | None, title: str, why: str, width: int) -> None:
        label = f"Figure: {title}" if title else "Figure"
        if png is not None:
            pixels_wide, pixels_high = png_size(png)
            output.data = nbformat.from_dict({"image/png": base64.b64encode(png).decode(), "text/plain": label})
            # width, height: the figure's size on the page (<img width height>), whatever its pixels per CSS px;
            # alt: what a screen reader says for the image
            size = {"width": width, "height": round(pixels_high * width / pixels_wide)}
            output.metadata = nbformat.from_dict({"image/png": {**size, "alt": label}})
        else:
            output.data = nbformat.from_dict({"text/plain": f"[{label} not shown: {why}]"})
            output.metadata = nbformat.from_dict({})
