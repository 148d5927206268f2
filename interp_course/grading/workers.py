"""Run a batch's planned sandbox runs side by side: a local process pool, or a Dask cluster.

``make grade`` grades in three steps (``interp_course.grading.batch``): nbgrader autograde judges
every submission whose run is kept and writes a *plan* for each other one; this module executes
the plans and keeps their runs (``interp_course.grading.run_cache``), starting on each as soon as it is
written (``--follow``: until stdin ends, which the grader closes when that pass has exited);
a second nbgrader autograde judges those students from their kept runs, each as soon as its run
is marked finished. nbgrader stays the gradebook's only writer, so any number of workers, in any
order, gives the same grades.

* ``--workers N`` (default: the number of cores): N sandboxed kernels at a time on this machine,
  each driven by a thread of this process (the kernels are processes; the threads only wait on
  them) and forked from one shared zygote; a run's figures are drawn (in a sandbox of their own)
  while its worker's next kernel runs.
* ``--scheduler tcp://HOST:PORT``: the runs go to the workers of a running Dask scheduler. Each
  worker needs this package, bubblewrap and the model cache, and runs as an unprivileged account;
  a plan and its result travel as plain ``{file name: bytes}``. Dask reschedules the runs of a
  worker that dies; a run that still fails is not kept, and the last step runs it itself.

Run as the grading account, never as root: it handles what kernels produced.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from interp_course.patches.lean_imports import skip_iri_grammars

skip_iri_grammars()  # before run_cache imports nbformat; Dask workers import this module too

from interp_course.grading import run_cache  # noqa: E402
from interp_course.grading.log import CHECKED, REFUSED, WORKER_MARK  # noqa: E402
from interp_course.security.inert import one_line  # noqa: E402


class _MarkedLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(WORKER_MARK + line for line in super().format(record).splitlines())


def log_warnings() -> None:
    """Send the sandbox's and the executor's warnings to stderr, each line marked as a worker's.

    Outside an nbgrader app, traitlets gives them a logger that drops everything. A local
    worker's stderr reaches the grader (``autograde._Workers``), a Dask worker's its own log.
    """
    logger = logging.getLogger("traitlets")
    if not any(isinstance(h.formatter, _MarkedLines) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_MarkedLines("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def run_kernel(plan: dict[str, bytes]):
    """The kernel half of one plan's run, in a fresh sandbox here: (the grader, the executed
    notebook with its figures still plotly JSON, the hand-ins read from the outbox). The run's
    folder is gone when it returns."""
    import nbformat
    from traitlets.config import Config

    from interp_course.sandbox import workdir
    from interp_course.judging.judge import read_outbox
    from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox

    log_warnings()
    meta = json.loads(plan[run_cache.PLAN_META])
    grader = GradeInSandbox(config=Config(meta["config"]))
    run = workdir.make(parent=grader.run_parent())
    try:
        (run / "outbox").mkdir()
        for folder in ("inbox", "work"):
            (run / folder).mkdir()
        for name, data in plan.items():
            top, _, rest = name.partition("/")
            if top in ("inbox", "work") and rest and ".." not in Path(rest).parts:
                path = run / top / rest
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        nb = nbformat.reads(plan[run_cache.NOTEBOOK].decode(), as_version=4)
        nb = grader.run_kernel(nb, run, meta["models"])
        return grader, nb, read_outbox(run / "outbox", nb)
    finally:
        workdir.remove_tree(run)


def _import_run_kernel() -> None:
    """Import what ``run_kernel`` needs (nbgrader's preprocessors, nbclient, the sandbox: ~0.7 s)
    now: a local pool is started while the first plan is still being written, and the first
    zygote then starts as soon as that plan is there. (``run_kernel`` imports them itself: a Dask
    worker imports this module too, and needs them only once it runs a plan.)"""
    for name in ("nbformat", "traitlets.config", "interp_course.judging.judge",
                 "interp_course.preprocessors.grade_in_sandbox"):
        importlib.import_module(name)


def draw_figures(ran) -> dict[str, bytes]:
    """The figure half of a run (``run_kernel``'s result); the whole run as flat files
    (``run_cache.entry_files``)."""
    grader, nb, hand_ins = ran
    return run_cache.entry_files(grader.draw_figures(nb), hand_ins)


def execute_plan(plan: dict[str, bytes]) -> dict[str, bytes]:
    """Run one plan in a fresh sandbox here, figures included; its result as flat files."""
    return draw_figures(run_kernel(plan))


def faults(result: dict[str, bytes]) -> list[str]:
    """The kernel faults of a run, as "KernelDied in cell 28"."""
    import nbformat

    try:
        nb = nbformat.reads(result[run_cache.NOTEBOOK].decode(), as_version=4)
    except Exception:  # noqa: BLE001 - _keep refuses it and says so
        return []
    return run_cache.faults(nb)


_CHECK_CELL = """\
import os
import interp_course.handin  # the package the hidden tests hand in with (and torch, through it)
hub = os.path.join(os.environ["HF_HOME"], "hub")
missing = [m for m in {models!r} if not os.path.isdir(os.path.join(hub, "models--" + m.replace("/", "--")))]
assert not missing, f"the model cache is not visible in the sandbox: {{missing}} under {{hub}}"
"""


def check_plan(plan: dict[str, bytes]) -> dict[str, bytes]:
    """A plan with ``plan``'s settings and models (so a kernel started exactly as the batch's) whose
    notebook only imports what every run imports and looks for the model cache."""
    import nbformat

    meta = json.loads(plan[run_cache.PLAN_META])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_CHECK_CELL.format(models=meta["models"]))])
    return {run_cache.PLAN_META: plan[run_cache.PLAN_META], run_cache.NOTEBOOK: nbformat.writes(nb).encode()}


def check_failure(result: dict[str, bytes]) -> str:
    """What went wrong in a check run's result (``execute_plan``'s files); empty if nothing did."""
    import nbformat

    nb = nbformat.reads(result[run_cache.NOTEBOOK].decode(), as_version=4)
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    return "; ".join(errors)


def check_kernel(runner, plan: dict[str, bytes]) -> bool:
    """Run ``check_plan(plan)`` where the batch's runs will run; say how it went (``CHECKED``
    or ``REFUSED``); whether a kernel could start there and import the course package."""
    try:
        why = check_failure(runner.run_now(check_plan(plan)))
    except Exception as exc:  # noqa: BLE001 - e.g. KernelStartFailed, with the kernel's own last lines
        why = f"{type(exc).__name__}: {exc}"
    if why:
        print(WORKER_MARK + one_line(f"{REFUSED}no sandboxed kernel could start on the workers {runner.label} ({why})"), flush=True)
        return False
    print(f"{WORKER_MARK}{CHECKED}a kernel started on the workers {runner.label} and imported the course package", flush=True)
    return True


def _students(plans: Path) -> dict[str, list[str]]:
    """Which students each plan is for (identical notebooks share one)."""
    found: dict[str, list[str]] = {}
    for path in sorted((plans / run_cache.PLANNED).glob("*")):
        found.setdefault(path.read_text().strip(), []).append(path.name)
    return found


def _report_faults(plans: Path, key: str, result) -> None:
    found = faults(result) if isinstance(result, dict) else []
    if found:
        who = ", ".join(_students(plans).get(key, [key[:12]]))
        print(one_line(f"  {who}: {run_cache.fault_line(found)}"), flush=True)


def _finish(plans: Path, cache: run_cache.RunCache, key: str, future, where: str) -> bool:
    """Report and keep one finished run; whether it was kept. A lost run is graded by the last
    nbgrader pass itself."""
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - a dead worker, KilledWorker, ...
        who = ", ".join(_students(plans).get(key, [key[:12]]))
        print(one_line(f"  {who}: the run failed {where} ({type(exc).__name__}: {exc}); nbgrader runs it itself"),
              flush=True)
        return False
    _report_faults(plans, key, result)
    return _keep(cache, key, result)


def _keep(cache: run_cache.RunCache, key: str, result) -> bool:
    try:
        cache.store(key, result)
        return True
    except (ValueError, OSError) as exc:
        print(one_line(f"  run {key[:12]} not kept: {exc}"), flush=True)
        return False


class Progress:
    """One line per finished run: a bar, the count, the seconds per notebook so far and the time
    left. While the plans are still being written the total can grow: it then reads ``3/8+``.

    The time left comes from the pace once every worker has finished two runs, over at least one
    more run per worker: the first runs wait on the batch's start (the zygote's imports, the first
    figures) and so finish together, which would make the time left minutes too long (14 s per
    notebook after the first of 8, for 3 s from then on) or nothing at all. Until then it reads
    ``ETA …``."""

    def __init__(self, workers: int, where: str):
        self.workers, self.total, self.done, self.failed, self.more = workers, 0, 0, 0, True
        self.start = time.perf_counter()
        self._since: tuple[float, int] | None = None  # (when, runs done) once each worker has done two
        print(f"Running the notebooks in the sandbox as they are planned: {workers} worker(s) {where}", flush=True)

    def tick(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.perf_counter()
        if self._since is None and self.done >= 2 * self.workers:
            self._since = (now, self.done)
        filled = round(24 * self.done / self.total)
        print(f"  [{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total}{'+' if self.more else ''}  "
              f"{(now - self.start) / self.done:.1f} s/notebook  ETA {self._eta(now)}"
              + (f"  ({self.failed} failed)" if self.failed else ""), flush=True)

    def _eta(self, now: float) -> str:
        if self.done >= self.total:
            return "…" if self.more else "0:00"
        if self._since is None or self.done - self._since[1] < self.workers:
            return "…"
        since, done = self._since
        left = (self.total - self.done) * (now - since) / (self.done - done)
        return f"{int(left) // 60}:{int(left) % 60:02d}"


class Plans:
    """The plans in a folder, as nbgrader writes them (each one appears whole: ``write_plan``
    renames it into place). With ``follow`` more may come until this process's stdin ends, which
    the grader closes when the planning ``nbgrader autograde`` has exited; the runs then start
    while the rest of the batch is still being planned."""

    def __init__(self, folder: Path, follow: bool, told=None):
        self.folder, self._seen = folder, set()
        self._told = run_cache.OpenInput(told) if follow else None

    @property
    def planning(self) -> bool:
        """Whether more plans may come."""
        return self._told is not None and self._told.open

    def new(self) -> list[str]:
        """The plans written since the last call, in the order they were written (the order in
        which the judging pass takes the students)."""
        keys = [k for k in run_cache.plan_keys(self.folder) if k not in self._seen]
        self._seen.update(keys)
        return sorted(keys, key=lambda k: (os.stat(self.folder / k).st_mtime_ns, k))

    def wait(self, timeout: float) -> None:
        """Up to ``timeout`` seconds, less if planning ends meanwhile."""
        if self._told is not None:
            self._told.wait(timeout)


POLL_S = 0.2  # how often a following run looks for new plans


class _Local:
    """Up to ``workers`` kernels at once on this machine, each driven by a thread of this process:
    its kernel is a process of its own, forked from the one zygote they share (one set of library
    imports, not one per worker), and a figure one of them has drawn is not drawn again.

    A run's figures are drawn by a second set of ``workers`` threads, while the worker that ran
    the kernel starts its next one: drawing a notebook's figures is mostly waiting on Chromium
    (~4 s of wall time for ~1.6 s of CPU), time in which the next kernel can use the core. At most
    ``workers`` runs wait for or are at their figures (each holds its notebook and hand-ins in
    memory): a worker with a finished kernel waits for a free place before it starts another."""

    where = "on its worker"

    def __init__(self, workers: int):
        self.workers, self.label = workers, "on this machine"
        self.kernels = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
        self.figures = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="figures")
        self._at_figures = threading.BoundedSemaphore(workers)

    def submit(self, key: str, plan: dict[str, bytes]) -> Future:
        result = Future()  # done when the run and its figures are

        def figures(ran) -> None:
            try:
                result.set_result(draw_figures(ran))
            except BaseException as exc:  # noqa: BLE001 - the run's failure, reported by _finish
                result.set_exception(exc)
            finally:
                self._at_figures.release()

        def kernel() -> None:
            try:
                ran = run_kernel(plan)
            except BaseException as exc:  # noqa: BLE001
                result.set_exception(exc)
            else:
                self._at_figures.acquire()
                self.figures.submit(figures, ran)

        self.kernels.submit(kernel)
        return result

    def run_now(self, plan: dict[str, bytes]) -> dict[str, bytes]:
        return self.submit("", plan).result()

    def finished(self, running, block: bool):
        return wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)[0]

    def close(self) -> None:
        self.kernels.shutdown(cancel_futures=True)  # first: a running kernel still hands its figures on
        self.figures.shutdown(cancel_futures=True)


class _Dask:
    """A running Dask scheduler's workers; Dask retries a run once elsewhere if its worker dies."""

    where = "on the cluster"

    def __init__(self, scheduler: str):
        from distributed import Client, as_completed

        self.client = Client(scheduler, timeout="30s")
        self.running = as_completed()
        self.workers, self.label = len(self.client.scheduler_info()["workers"]), f"of the Dask scheduler at {scheduler}"

    def submit(self, key: str, plan: dict[str, bytes]):
        future = self.client.submit(execute_plan, plan, key=f"run-{key}", pure=False, retries=1)
        self.running.add(future)
        return future

    def run_now(self, plan: dict[str, bytes]) -> dict[str, bytes]:
        return self.client.submit(execute_plan, plan, pure=False).result()

    def finished(self, running, block: bool):
        return self.running.next_batch(block=block)

    def close(self) -> None:
        self.client.close()


def run(plans: Plans, cache: run_cache.RunCache, start) -> tuple[int, int] | None:
    """Execute the plans on ``start()`` (``_Local`` or ``_Dask``), made when the first plan is
    there, and keep their runs; (runs kept, runs tried), or None if no kernel could start there
    (``check_kernel``: then no plan is run)."""
    runner, progress, running, kept = None, None, {}, 0
    try:
        while True:
            for key in plans.new():
                if runner is None:
                    runner = start()
                    if not check_kernel(runner, run_cache.plan_data(plans.folder / key)):
                        return None
                    progress = Progress(runner.workers, runner.label)
                running[runner.submit(key, run_cache.plan_data(plans.folder / key))] = key
                progress.total += 1
            if progress is not None:
                progress.more = plans.planning
            if not running:
                if not plans.planning:
                    return kept, progress.total if progress else 0
                plans.wait(POLL_S)
                continue
            done = runner.finished(running, block=not plans.planning)
            for future in done:
                key = running.pop(future)
                ok = _finish(plans.folder, cache, key, future, runner.where)
                run_cache.mark_finished(plans.folder, key)  # the judging pass may take this student now
                kept += ok
                progress.tick(ok)
            plans.wait(0 if done else POLL_S)
    finally:
        if runner is not None:
            runner.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp_course.grading.workers",
                                     description="Execute planned sandbox runs and keep their results.")
    parser.add_argument("plans", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scheduler", default="")
    parser.add_argument("--follow", action="store_true",
                        help="Run plans as they are written, until stdin ends (the planning pass is over).")
    args = parser.parse_args(argv)
    plans = Plans(args.plans, args.follow)
    cache = run_cache.RunCache(args.cache)
    if not args.scheduler:
        _import_run_kernel()
    if args.scheduler:
        ran = run(plans, cache, lambda: _Dask(args.scheduler))
    else:
        ran = run(plans, cache, lambda: _Local(max(1, args.workers)))
    if ran is None:
        return 2
    kept, tried = ran
    if tried:
        print(f"Kept {kept} of {tried} run(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
