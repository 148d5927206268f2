"""The autograde step that replaces nbgrader's ``Execute``: run sandboxed, then judge outside.

For one submission:
1. the grader (this process) loads the assignment's checks (``grader_tests/<a>/checks.py``)
   and the models they declare, and writes the inputs of this notebook's checks to an inbox;
2. ``ResilientExecute`` runs the notebook in a bubblewrap kernel that sees the inbox read-only,
   an outbox read-write, a scratch working folder of its own (``interp_course.workdir``: copies
   of the submission's extra files), the course package and the declared models' cache folders,
   and nothing of the course: not nbgrader's output folder, source/, solutions/, grader_tests/,
   the gradebook or other submissions;
3. the hidden test cells hand the student's results to the outbox;
4. back here, ``judge_notebook`` scores every test cell from those results alone and writes
   the verdict into the cell, where nbgrader's ``SaveAutoGrades`` picks it up;
5. the whole run folder (inbox, outbox, scratch) is deleted without following links.

``nbgrader_config.py`` puts this class in ``Autograde.autograde_preprocessors`` so that plain
``nbgrader autograde`` takes this path.
"""

from __future__ import annotations

from pathlib import Path

from traitlets import Unicode

from interp_course import guard, handin, models, workdir
from interp_course.course import Course
from interp_course.judging.assignment import load_assignment
from interp_course.judging.judge import judge_notebook, write_inbox
from interp_course.preprocessors.resilient_execute import ResilientExecute

PACKAGE_DIR = Path(handin.__file__).resolve().parent


class GradeInSandbox(ResilientExecute):
    """Execute in the sandbox, then replace every test cell's outputs with the clean verdict."""

    plotly_renderer = Unicode(
        "plotly_mimetype",
        help="Plotly renderer inside the grading kernel: the figure's JSON, which RenderFigures "
        "then draws as a PNG in a sandbox of its own (not HTML that needs plotly.js from a CDN).",
    ).tag(config=True)

    _handin_dir: Path | None = None
    _models: tuple[str, ...] = ()

    def preprocess(self, nb, resources):
        course = Course.from_config(self.config)
        guard.check_not_root()  # the kernel's uid maps to ours: never root (last line of defence)
        assignment = load_assignment(course, resources["nbgrader"]["assignment"])
        self._models = assignment.models
        # nbclient starts the kernel in resources["metadata"]["path"]: nbgrader sets it to its own
        # output folder, which it writes and copies from after the run. Point it at scratch instead.
        output_folder = resources["metadata"]["path"]
        run = workdir.make()
        try:
            self._handin_dir = run
            (run / "outbox").mkdir()
            skipped = workdir.copy_regular_files(Path(output_folder), run / "work",
                                                 exclude=["*.ipynb", *self._ignore_patterns()])
            if skipped:
                self.log.warning("Not given to the kernel (not regular files): %s", ", ".join(skipped))
            inputs = write_inbox(run / "inbox", nb, assignment)
            resources["metadata"]["path"] = str(run / "work")
            try:
                nb, resources = super().preprocess(nb, resources)
            finally:
                resources["metadata"]["path"] = output_folder
            verdicts = judge_notebook(nb, run / "outbox", inputs, assignment, self.log)
        finally:
            self._handin_dir = None
            workdir.remove_tree(run)
        total = sum(v.points for v in verdicts.values())
        self.log.info("Autograded test cells: %g / %g points", total, sum(v.max_points for v in verdicts.values()))
        return nb, resources

    def _ignore_patterns(self) -> list[str]:
        from nbgrader.coursedir import CourseDirectory

        return list(CourseDirectory(config=self.config).ignore)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        hf_home, model_folders = models.cache_folders(self._models)
        (self._handin_dir / "inbox").mkdir(exist_ok=True)
        km.readonly_paths = [*km.readonly_paths, str(PACKAGE_DIR), *map(str, model_folders),
                             str(self._handin_dir / "inbox")]
        km.writable_paths = [*km.writable_paths, str(self._handin_dir / "outbox")]
        km.extra_env = {
            **km.extra_env,
            # Only the declared models' folders of the HF cache are bound (never a token), and
            # the sandbox has no network: never wait on the hub.
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "1",
            handin.ENV_VAR: str(self._handin_dir),
            # The package's own folder is the only thing bound from its parent: import it from
            # there, whatever an editable install's finder would point at.
            "PYTHONPATH": str(PACKAGE_DIR.parent),
            "PLOTLY_RENDERER": self.plotly_renderer,
            "PYTHONHASHSEED": "0",
            # Progress bars become widget JSON in the feedback HTML.
            "TQDM_DISABLE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        return km
