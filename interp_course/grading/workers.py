"""A batch's sandboxed runs, side by side: threads of this process, or a Dask cluster.

``grading.autograde`` hands each run it plans to :class:`Runs` and judges each student as soon as
their run is kept; nbgrader stays the gradebook's only writer, so any number of workers, in any
order, gives the same grades.

* local (the default): ``workers`` sandboxed kernels at a time on this machine, each driven by a
  thread (the kernels are processes; the threads only wait on them) and forked from one shared
  zygote; a run's figures are drawn (in a sandbox of their own) while its worker's next kernel runs.
* ``scheduler`` (``tcp://HOST:PORT``): the runs go to the workers of a running Dask scheduler. Each
  worker needs this package, bubblewrap and the model cache, and runs as an unprivileged account;
  a plan and its result travel as plain ``{file name: bytes}``. Dask reschedules the runs of a
  worker that dies; a run that still fails is not kept, and the judging pass runs it itself.

Runs as the grading account, never as root: it handles what kernels produced.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

Say = Callable[[str], None]

from interp_course.grading import run_cache
from interp_course.security.inert import one_line


def say(line: str) -> None:
    """Print a line of a batch's progress (``grading.autograde`` sends them to the grader's terminal
    on a channel of their own instead: no student's text reaches it)."""
    print(one_line(line), flush=True)


def log_warnings() -> None:
    """On a Dask worker, send the sandbox's and the executor's warnings to its log (stderr).

    Outside an nbgrader app, traitlets gives them a logger that drops everything.
    """
    logger = logging.getLogger("traitlets")
    if not any(getattr(h, "_interp_course", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler._interp_course = True
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


class OutOfTime(Exception):
    """A run not started: the batch's time limit had run out."""


def _check_time(deadline: float) -> None:
    if deadline and time.time() > deadline:
        raise OutOfTime("the batch's time limit ran out before this run started")


def run_kernel(plan: dict[str, bytes]):
    """The kernel half of one plan's run, in a fresh sandbox here: (the grader, the executed
    notebook with its figures still plotly JSON, the hand-ins read from the outbox). The run's
    folder is gone when it returns."""
    import nbformat
    from traitlets.config import Config

    from interp_course.sandbox import workdir
    from interp_course.judging.judge import read_outbox
    from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox

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


def draw_figures(ran) -> dict[str, bytes]:
    """The figure half of a run (``run_kernel``'s result); the whole run as flat files
    (``run_cache.entry_files``)."""
    grader, nb, hand_ins = ran
    return run_cache.entry_files(grader.draw_figures(nb), hand_ins)


def execute_plan(plan: dict[str, bytes], deadline: float = 0) -> dict[str, bytes]:
    """Run one plan in a fresh sandbox here, figures included; its result as flat files (what a
    Dask worker runs). Not after ``deadline`` (a time.time(); 0: none): ``OutOfTime``."""
    _check_time(deadline)
    log_warnings()
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


def check_kernel(runner, plan: dict[str, bytes]) -> str:
    """Run ``check_plan(plan)`` where the batch's runs will run: why no kernel could start there
    and import the course package, or empty if one could."""
    try:
        why = check_failure(runner.run_now(check_plan(plan)))
    except Exception as exc:  # noqa: BLE001 - e.g. KernelStartFailed, with the kernel's own last lines
        why = f"{type(exc).__name__}: {exc}"
    return f"no sandboxed kernel could start on the workers {runner.label} ({why})" if why else ""


class Progress:
    """One line per finished run: a bar, the count, the seconds per notebook so far and the time
    left. While the plans are still being written the total can grow: it then reads ``3/8+``.

    The time left comes from the pace once every worker has finished two runs, over at least one
    more run per worker: the first runs wait on the batch's start (the zygote's imports, the first
    figures) and so finish together, which would make the time left minutes too long (14 s per
    notebook after the first of 8, for 3 s from then on) or nothing at all. Until then it reads
    ``ETA …``."""

    def __init__(self, workers: int, where: str, say: Say = say):
        self.say = say
        self.workers, self.total, self.done, self.failed, self.more = max(1, workers), 0, 0, 0, True
        self.start = time.perf_counter()
        self._since: tuple[float, int] | None = None  # (when, runs done) once each worker has done two
        say(f"Running the notebooks in the sandbox as they are planned: {workers} worker(s) {where}")

    def tick(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.perf_counter()
        if self._since is None and self.done >= 2 * self.workers:
            self._since = (now, self.done)
        filled = round(24 * self.done / self.total)
        self.say(f"  [{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total}{'+' if self.more else ''}  "
                 f"{(now - self.start) / self.done:.1f} s/notebook  ETA {self._eta(now)}"
                 + (f"  ({self.failed} failed)" if self.failed else ""))

    def _eta(self, now: float) -> str:
        if self.done >= self.total:
            return "…" if self.more else "0:00"
        if self._since is None or self.done - self._since[1] < self.workers:
            return "…"
        since, done = self._since
        left = (self.total - self.done) * (now - since) / (self.done - done)
        return f"{int(left) // 60}:{int(left) % 60:02d}"


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

    def __init__(self, workers: int, deadline: float = 0):
        self.workers, self.label, self.deadline = workers, "on this machine", deadline
        self.kernels = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
        self.figures = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="figures")
        self._at_figures = threading.BoundedSemaphore(workers)

    def submit(self, key: str, folder: Path) -> Future:
        """Run the plan in ``folder`` (read when its kernel starts, if the batch still has time);
        done when its figures are."""
        return self._submit(lambda: run_cache.plan_data(folder), self.deadline)

    def run_now(self, plan: dict[str, bytes]) -> dict[str, bytes]:
        return self._submit(lambda: plan).result()

    def _submit(self, plan: Callable[[], dict[str, bytes]], deadline: float = 0) -> Future:
        result = Future()

        def figures(ran) -> None:
            try:
                result.set_result(draw_figures(ran))
            except BaseException as exc:  # noqa: BLE001 - the run's failure, reported by Runs._keep
                result.set_exception(exc)
            finally:
                self._at_figures.release()

        def kernel() -> None:
            try:
                _check_time(deadline)
                ran = run_kernel(plan())
            except BaseException as exc:  # noqa: BLE001
                result.set_exception(exc)
            else:
                self._at_figures.acquire()
                self.figures.submit(figures, ran)

        self.kernels.submit(kernel)
        return result

    def close(self) -> None:
        self.kernels.shutdown(cancel_futures=True)  # first: a running kernel still hands its figures on
        self.figures.shutdown(cancel_futures=True)


class _Dask:
    """A running Dask scheduler's workers. Dask runs a failed run once more (on another worker if
    its worker died)."""

    where = "on the cluster"
    START_S = 60  # for the scheduler to answer and have a worker
    CHECK_S = 600  # for the first kernel (the worker's imports, the zygote's)

    def __init__(self, scheduler: str, deadline: float = 0):
        from distributed import Client

        self.deadline = deadline
        self.client = Client(scheduler, timeout=f"{self.START_S}s")
        self.client.wait_for_workers(1, timeout=self.START_S)
        self.workers, self.label = len(self.client.scheduler_info()["workers"]), f"of the Dask scheduler at {scheduler}"

    def submit(self, key: str, folder: Path):
        """The plan's bytes go to the cluster now (only local plans wait on disk)."""
        return self.client.submit(execute_plan, run_cache.plan_data(folder), self.deadline, key=f"run-{key}",
                                  pure=False, retries=1)

    def run_now(self, plan: dict[str, bytes]) -> dict[str, bytes]:
        return self.client.submit(execute_plan, plan, pure=False).result(timeout=self.CHECK_S)

    def close(self) -> None:
        self.client.close()


def runner(workers: int, scheduler: str = "", deadline: float = 0) -> "_Local | _Dask":
    """Where a batch's runs run: a Dask scheduler's workers, or ``workers`` threads here; none
    starts after ``deadline`` (a time.time(); 0: none)."""
    return _Dask(scheduler, deadline) if scheduler else _Local(max(1, workers), deadline)


class Runs:
    """The sandboxed runs of one batch, run while nbgrader plans and judges (``grading.autograde``).

    ``plan`` takes a run the planning pass could not judge from a kept one; a thread of this
    object makes the runner (``make_runner()``: ``_Local`` or ``_Dask``) at the first plan, checks
    that a kernel starts there (``check_kernel``: if not, no plan is run and ``planning_done``
    says why), then hands it every plan as it comes and keeps each run as it finishes. Once
    planning is done, ``finished()`` gives each planned student once all their notebooks' runs
    are over (kept, or lost: the judging pass then runs them itself). Identical notebooks share
    one run. Local plans wait on disk, in ``folder``. No run starts after ``deadline``
    (a ``time.time()``; 0: none): its students are ``late``.
    """

    def __init__(self, cache: run_cache.RunCache, make_runner: Callable[[], "_Local | _Dask"], folder: Path,
                 deadline: float = 0, say: Say = say):
        self.cache, self.make_runner, self.folder, self.deadline, self.say = cache, make_runner, folder, deadline, say
        self._events: queue.Queue = queue.Queue()  # ("plan", key) | ("done", key, future) | ("end",)
        self._finished: queue.Queue = queue.Queue()  # students whose runs are over; None: the workers stopped
        self._lock = threading.Lock()  # guards what follows, shared by the planning and the workers' threads
        self._students_of: dict[str, list[str]] = {}  # a key whose run is not over -> the students it is for
        self._keys_of: dict[str, set[str]] = {}  # a student -> the keys of their notebooks' runs
        self._left: dict[str, set[str]] = {}  # a student -> the keys whose runs are not over yet
        self._over: set[str] = set()  # keys whose run is over
        self._kept: set[str] = set()  # keys whose run this batch kept
        self._planning, self._closed, self._not_run = True, False, 0
        self._checked = threading.Event()
        self._thread: threading.Thread | None = None
        self.planned: list[str] = []
        self.refusal = ""

    def plan(self, student: str, key: str, write: Callable[[Path], None]) -> None:
        """Run ``student``'s notebook: ``write(folder)`` writes its plan (``run_cache.write_plan``).
        Called by the planning pass only (one thread)."""
        with self._lock:
            new = key not in self._students_of and key not in self._over
        if new:
            write(self.folder / key)
        with self._lock:
            if student not in self._keys_of:
                self.planned.append(student)
                self._keys_of[student], self._left[student] = set(), set()
            self._keys_of[student].add(key)
            if key not in self._over and not self._closed:
                self._left[student].add(key)
                self._students_of.setdefault(key, []).append(student)
            else:
                new = False  # the same notebook ran just now, or the workers stopped: nothing to run
        if new:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runs", daemon=True)
                self._thread.start()
            self._events.put(("plan", key))

    def planning_done(self) -> str:
        """No more plans. Why no kernel could start (then nothing runs), or empty."""
        self._events.put(("end",))
        with self._lock:
            self._planning = False
            for student, left in self._left.items():
                if not left:
                    self._finished.put(student)
        if self._thread is None:
            self._finished.put(None)
            return ""
        self._checked.wait()
        return self.refusal

    def finished(self) -> Iterator[str]:
        """Each planned student, as soon as their runs are over (after ``planning_done``)."""
        while (student := self._finished.get()) is not None:
            yield student
        while True:  # made ready after the workers stopped
            try:
                student = self._finished.get_nowait()
            except queue.Empty:
                break
            if student is not None:
                yield student
        if self._thread is not None:
            self._thread.join()

    def kept(self, key: str) -> bool:
        """Whether this batch ran ``key``'s notebook and kept the run."""
        with self._lock:
            return key in self._kept

    def late(self, student: str) -> bool:
        """Whether the time limit has run out with some of ``student``'s notebooks not run."""
        with self._lock:
            return (bool(self.deadline) and time.time() > self.deadline
                    and not self._keys_of.get(student, set()) <= self._kept)

    def _run(self) -> None:
        runner, progress, running, more = None, None, 0, True
        try:
            while more or running:
                event = self._events.get()
                if event[0] == "end":
                    more = False
                    if progress is not None:
                        progress.more = False
                    continue
                key = event[1]
                if event[0] == "done":
                    running -= 1
                    kept = self._keep(key, event[2], runner.where)
                    if kept is None:
                        progress.total -= 1
                    else:
                        progress.tick(kept)
                    self._over_for(key)
                    continue
                if runner is None:
                    runner = self._start(key)
                    if runner is None:
                        return
                    progress = Progress(runner.workers, runner.label, self.say)
                future = runner.submit(key, self.folder / key)
                future.add_done_callback(lambda f, key=key: self._events.put(("done", key, f)))
                running += 1
                progress.total += 1
            if progress is not None:
                self.say(f"Kept {progress.done - progress.failed} of {progress.done} run(s)"
                         + (f"; {self._not_run} not started: the batch's time limit ran out" if self._not_run else ""))
        except Exception as exc:  # noqa: BLE001 - the judging pass runs what is left itself
            self.say(f"The workers stopped ({type(exc).__name__}: {exc}); nbgrader runs what they did not.")
        finally:
            try:
                self._checked.set()
                if runner is not None:
                    runner.close()
            except Exception as exc:  # noqa: BLE001 - closing must not keep a student from being judged
                self.say(f"The workers did not close cleanly ({type(exc).__name__}: {exc})")
            finally:
                with self._lock:
                    self._closed, left = True, list(self._students_of)
                for key in left:
                    self._over_for(key)
                self._finished.put(None)

    def _start(self, key: str):
        """The runner, once a kernel started there (else None, and ``refusal`` says why)."""
        try:
            runner = self.make_runner()
        except Exception as exc:  # noqa: BLE001 - e.g. no Dask scheduler there, or no worker
            self.refusal = f"the workers could not start ({type(exc).__name__}: {exc})"
            return None
        self.refusal = check_kernel(runner, run_cache.plan_data(self.folder / key))
        if self.refusal:
            runner.close()
            return None
        self._checked.set()
        return runner

    def _over_for(self, key: str) -> None:
        """``key``'s run is over: the students with no other run to wait for may be judged."""
        with self._lock:
            self._over.add(key)
            for student in self._students_of.pop(key, []):
                self._left[student].discard(key)
                if not self._left[student] and not self._planning:
                    self._finished.put(student)
        shutil.rmtree(self.folder / key, ignore_errors=True)

    def _keep(self, key: str, future, where: str) -> bool | None:
        """Report and keep one finished run; whether it was kept (None: not started, out of time)."""
        with self._lock:
            who = ", ".join(sorted(self._students_of.get(key, []))) or key[:12]
        try:
            result = future.result()
        except OutOfTime:
            self._not_run += 1
            return None
        except Exception as exc:  # noqa: BLE001 - a dead worker, KilledWorker, ...
            self.say(f"  {who}: the run failed {where} ({type(exc).__name__}: {exc}); nbgrader runs it itself")
            return False
        found = faults(result)
        if found:
            self.say(f"  {who}: {run_cache.fault_line(found)}")
        try:
            self.cache.store(key, result)
        except (ValueError, OSError) as exc:
            self.say(f"  run {key[:12]} not kept: {exc}")
            return False
        with self._lock:
            self._kept.add(key)
        return True
