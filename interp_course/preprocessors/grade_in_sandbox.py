"""The autograde step that replaces nbgrader's ``Execute``: run sandboxed, then judge outside.

For one submission:
1. the grader (this process) loads the assignment's checks (``grader_tests/<a>/checks.py``)
   and the models they declare, and writes the inputs of this notebook's checks to an inbox;
2. ``ResilientExecute`` runs the notebook in a sandboxed kernel (forked from the zygote:
   ``interp_course.sandbox.kernel_manager``, ``interp_course.sandbox.zygote``) that sees the inbox read-only,
   an outbox read-write, a scratch working folder of its own (``interp_course.sandbox.workdir``: copies
   of the submission's extra files), the course package and the declared models' cache folders,
   and nothing of the course: not nbgrader's output folder, source/, solutions/, grader_tests/,
   the gradebook or other submissions;
3. the hidden test cells hand the student's results to the outbox, and the notebook's plotly
   figures are drawn as PNGs in a sandbox of their own (``RenderFigures``);
4. back here, ``judge_notebook`` scores every test cell from those results alone and writes
   the verdict into the cell, where nbgrader's ``SaveAutoGrades`` picks it up;
5. the whole run folder (inbox, outbox, scratch) is deleted without following links.

Runs are kept (``interp_course.grading.run_cache``): a notebook whose key (sanitized notebook, inputs,
extra files, models, engine) was run before is judged from the kept run, with no kernel. In a
batch (``interp_course.grading.autograde``), a run that is not kept is not executed here but handed
to the batch's workers as a plan; the cell verdicts then say nothing was handed in, and the batch
grades that student again as soon as the run is kept.

``nbgrader_config.py`` puts this class in ``Autograde.autograde_preprocessors`` so that plain
``nbgrader autograde`` takes this path.
"""

from __future__ import annotations

import json
from pathlib import Path

from traitlets import Bool, Enum, Int, Unicode

from interp_course.grading import run_cache
from interp_course.sandbox import workdir, zygote
from interp_course.security import grader_user
from interp_course.course import Course
from interp_course.preprocessors.render_figures import RenderFigures
from interp_course.preprocessors.resilient_execute import ResilientExecute

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # interp_course/, bound into the kernel
# handin.ENV_VAR (a unit test checks they agree), without importing handin: it imports torch,
# which a worker that only starts kernels does not need (~1-3 s each).
HANDIN_ENV_VAR = "INTERP_COURSE_HANDIN"
# glibc hands every freed block over 128 KiB back to the OS, so each large tensor a notebook makes
# is new memory, faulted in and zeroed page by page: ~380,000 page faults and ~0.5 s of system
# time in one of the course's runs. With these, glibc keeps freed memory for the next tensor (~150,000
# faults; the run's CPU 2.75 -> 2.2 s). A kernel lives for one notebook, under its memory cap.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**32)}


class GradeInSandbox(ResilientExecute):
    """Execute in the sandbox, then replace every test cell's outputs with the clean verdict."""

    plotly_renderer = Unicode(
        "plotly_mimetype",
        help="Plotly renderer inside the grading kernel: the figure's JSON, which RenderFigures "
        "then draws as a PNG in a sandbox of its own (not HTML that needs plotly.js from a CDN).",
    ).tag(config=True)

    # A run's results are complete when its last cell is idle (hand-ins are written by the test
    # cells; the sandbox is thrown away). A graceful shutdown waited 2.5 s per run for the kernel
    # to exit before it was terminated anyway.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate",
                           help="How the kernel is stopped after the last cell.").tag(config=True)

    kernel_threads = Int(
        1,
        help="Threads the kernel's numeric libraries use (OMP/MKL/OpenBLAS). One: a batch runs one "
        "kernel per core (workers = cores), and more threads per kernel would only contend for "
        "them (as Dask workers do, by default); the numbers are then the same on any machine "
        "and for any number of workers. Part of a run's key.",
    ).tag(config=True)

    reuse_runs = Bool(True, help="Judge a notebook from its kept run when there is one "
                      "(False: run it again and keep the new run).").tag(config=True)
    rerun_faulted = Bool(False, help="Run a notebook again when its kept run's kernel faulted (died, or ran "
                         "out of time): e.g. after the machine ran short of memory. False: judge it from that "
                         "run, as any other (and say so).").tag(config=True)

    _handin_dir: Path | None = None
    _models: tuple[str, ...] = ()

    def preprocess(self, nb, resources):
        # Imported here, not at the top: every nbgrader command loads the course config, and
        # only autograde needs torch (~2 s to import) for judging.
        import torch

        from interp_course.judging.assignment import load_assignment
        from interp_course.judging.judge import judge_notebook, read_outbox, write_inbox

        # The grader's own tensor work (check inputs, reference results, judging) on one thread,
        # as each kernel's: the cores are the kernels' (a worker per core), and the math library's
        # threads then fight them for it (at real scale an eigh took 3 s beside one kernel, 0.1 s
        # on one thread). One thread also gives the same numbers on any machine.
        torch.set_num_threads(1)
        course = Course.from_config(self.config)
        grader_user.check_not_root()  # the kernel's uid maps to ours: never root (last line of defence)
        assignment = load_assignment(course, resources["nbgrader"]["assignment"])
        # nbclient starts the kernel in resources["metadata"]["path"]: nbgrader sets it to its own
        # output folder, which it writes and copies from after the run. Point it at scratch instead.
        output_folder = resources["metadata"]["path"]
        run = workdir.make(parent=self.run_parent())
        try:
            (run / "outbox").mkdir()
            skipped = workdir.copy_regular_files(Path(output_folder), run / "work",
                                                 exclude=["*.ipynb", *self._ignore_patterns()])
            if skipped:
                self.log.warning("Not given to the kernel (not regular files): %s", ", ".join(skipped))
            inputs = write_inbox(run / "inbox", nb, assignment)
            key = run_cache.run_key(nb, run / "inbox", run / "work", assignment.models, self.execution_settings())
            kept = run_cache.RunCache(course.run_cache)
            batch, student = self._batch(), resources["nbgrader"]["student"]
            if batch is not None and not batch.planning:  # judging: from the run this batch made, if kept
                hit, faulted = (kept.load(key) if batch.kept(key) else None), []
            else:
                hit = kept.load(key) if self.reuse_runs else None
                faulted = run_cache.faults(hit[0]) if hit is not None else []
                if faulted and self.rerun_faulted:
                    self.log.info("The kept run %s faulted (%s): running it again", key[:12],
                                  run_cache.fault_line(faulted))
                    hit = None
            if hit is not None:
                nb, hand_ins = hit
                self.log.info("Judged from the kept run %s (no kernel)", key[:12])
                if faulted:
                    self.log.warning("%s: judged from a kept run whose kernel faulted (%s); "
                                     "--GradeInSandbox.rerun_faulted=True runs it again", student,
                                     run_cache.fault_line(faulted))
                    if batch is not None:
                        batch.kept_fault(student, run_cache.fault_line(faulted))
            elif batch is not None and batch.planning:
                config = self.plan_config()
                batch.plan(student, key, lambda folder: run_cache.write_plan(folder, nb, run, assignment.models, config))
                hand_ins = {}
            else:
                nb = self.execute_run(nb, run, assignment.models, resources)
                hand_ins = read_outbox(run / "outbox", nb)
                kept.store(key, run_cache.entry_files(nb, hand_ins))
            verdicts = judge_notebook(nb, hand_ins, inputs, assignment, self.log)
        finally:
            workdir.remove_tree(run)
        total = sum(v.points for v in verdicts.values())
        self.log.info("Autograded test cells: %g / %g points", total, sum(v.max_points for v in verdicts.values()))
        return nb, resources

    def _batch(self):
        """The batch this notebook is graded in (``grading.autograde.AutogradeBatch``, the app
        above this preprocessor's exporter and converter), or None under plain ``nbgrader autograde``."""
        node = self.parent
        while node is not None and not hasattr(node, "planning"):
            node = getattr(node, "parent", None)
        return node

    def execute_run(self, nb, run: Path, model_ids, resources: dict | None = None):
        """Run ``nb`` in the sandbox with ``run``'s inbox, outbox and scratch folder ``work``,
        then draw its figures."""
        return self.draw_figures(self.run_kernel(nb, run, model_ids, resources))

    def run_kernel(self, nb, run: Path, model_ids, resources: dict | None = None):
        """The kernel half of a run: ``nb`` executed, its figures still plotly JSON."""
        resources = resources if resources is not None else {"metadata": {}}
        saved_path = resources["metadata"].get("path")
        self._handin_dir, self._models = run, tuple(model_ids)
        resources["metadata"]["path"] = str(run / "work")
        try:
            nb, _ = ResilientExecute.preprocess(self, nb, resources)
        finally:
            resources["metadata"]["path"] = saved_path
            self._handin_dir = None
        return nb

    def draw_figures(self, nb):
        """The figure half: each plotly figure drawn as a PNG in a sandbox of its own. Part of the
        run (kept with it, so a regrade does not draw again); it needs nothing of the run folder,
        so a worker may draw one run's figures while its next kernel runs."""
        nb, _ = RenderFigures(config=self.config, parent=self).preprocess(nb, {})
        return nb

    # The settings a run depends on (part of its key) and what a worker is configured with.
    _PLAN_SECTIONS = ("Execute", "ResilientExecute", "GradeInSandbox", "SandboxedKernelManager", "NotebookClient",
                      "RenderFigures")

    # How this batch runs, not what a run does:
    _BATCH_ONLY = ("reuse_runs", "rerun_faulted")

    def plan_config(self) -> dict:
        sections = {name: {k: v for k, v in self.config[name].items() if k not in self._BATCH_ONLY}
                    for name in self._PLAN_SECTIONS if name in self.config}
        return json.loads(json.dumps({k: v for k, v in sections.items() if v}, default=str))

    def execution_settings(self) -> dict:
        names = [n for n in self.trait_names(config=True) if n not in self._BATCH_ONLY]
        return {"traits": {n: repr(getattr(self, n)) for n in sorted(names)}, "config": self.plan_config()}

    def run_parent(self) -> str:
        """Where this grader makes run folders: its runs folder, the only place a kernel forked
        from the zygote can be given folders of (``interp_course.sandbox.zygote``)."""
        return zygote.runs_root()

    def _ignore_patterns(self) -> list[str]:
        from nbgrader.coursedir import CourseDirectory

        return list(CourseDirectory(config=self.config).ignore)

    def create_kernel_manager(self):
        from interp_course import models

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
            HANDIN_ENV_VAR: str(self._handin_dir),
            # The package's own folder is the only thing bound from its parent: import it from
            # there, whatever an editable install's finder would point at.
            "PYTHONPATH": str(PACKAGE_DIR.parent),
            "PLOTLY_RENDERER": self.plotly_renderer,
            "PYTHONHASHSEED": "0",
            **dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(self.kernel_threads)),
            **KEEP_FREED_MEMORY,
            # Progress bars become widget JSON in the feedback HTML.
            "TQDM_DISABLE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        return km
