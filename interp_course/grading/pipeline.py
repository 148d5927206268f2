"""The autograde step that replaces nbgrader's ``Execute``: run sandboxed, then judge outside.

For one submission:
1. the grader (this process) loads W_E itself and writes each check's inputs to an inbox;
2. ``ResilientExecute`` runs the notebook in a bubblewrap kernel that sees the inbox read-only,
   an outbox read-write, the course package and the model cache — and nothing of source/,
   solutions/, grader_tests/, the gradebook or other submissions;
3. the hidden test cells hand the student's results to the outbox;
4. back here, ``judge_notebook`` scores every test cell from those results alone and writes
   the verdict into the cell, where nbgrader's ``SaveAutoGrades`` picks it up.

``nbgrader_config.py`` puts this class in ``Autograde.autograde_preprocessors`` so that plain
``nbgrader autograde`` takes this path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from traitlets import Unicode

from interp_course import handin, models
from interp_course.grading.execute import ResilientExecute
from interp_course.grading.verdict import judge_notebook, write_inbox

PACKAGE_DIR = Path(handin.__file__).resolve().parent


class GradeInSandbox(ResilientExecute):
    """Execute in the sandbox, then replace every test cell's outputs with the clean verdict."""

    plotly_renderer = Unicode(
        "notebook_connected",
        help="Plotly renderer inside the grading kernel: one that emits text/html, which "
        "nbconvert's feedback HTML shows (the default JSON mimetype is not displayed).",
    ).tag(config=True)

    _handin_dir: Path | None = None

    def preprocess(self, nb, resources):
        embeddings = models.load_embeddings()
        with tempfile.TemporaryDirectory(prefix="interp-course-handin-") as folder:
            self._handin_dir = Path(folder)
            (self._handin_dir / "outbox").mkdir()
            inputs = write_inbox(self._handin_dir / "inbox", embeddings)
            nb, resources = super().preprocess(nb, resources)
            verdicts = judge_notebook(nb, self._handin_dir / "outbox", inputs, embeddings, self.log)
        self._handin_dir = None
        total = sum(v.points for v in verdicts.values())
        self.log.info("Autograded test cells: %g / %g points", total, sum(v.max_points for v in verdicts.values()))
        return nb, resources

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        settings = models.read_settings()
        env = models.model_env(settings)
        hf_home = env.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        km.readonly_paths = [*km.readonly_paths, str(PACKAGE_DIR), hf_home, str(self._handin_dir / "inbox")]
        km.writable_paths = [*km.writable_paths, str(self._handin_dir / "outbox")]
        km.extra_env = {
            **km.extra_env,
            **env,
            "HF_HOME": hf_home,
            # The sandbox has no network: never wait on the hub.
            "HF_HUB_OFFLINE": "1",
            handin.ENV_VAR: str(self._handin_dir),
            "PLOTLY_RENDERER": self.plotly_renderer,
            "PYTHONHASHSEED": "0",
            # Progress bars become widget JSON in the feedback HTML.
            "TQDM_DISABLE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        return km
