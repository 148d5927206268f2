"""A batch's runs (interp_course.grading.workers): each student is judged as soon as their run is
over, faults are named once per run, and a worker draws one run's figures while its next kernel runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import nbformat
import pytest

from interp_course.grading import run_cache, workers
from interp_course.judging.handin_files import RawHandIn


def result_with(*outputs):
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = list(outputs)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])
    return run_cache.entry_files(nb, {"test_a": RawHandIn(problem="nothing was handed in")})


def shown(out: str) -> list[str]:
    """The lines a batch shows on the instructor's terminal (``say``: printed, outside a batch)."""
    return out.splitlines()


def test_kernel_faults_are_named_with_their_cell():
    died = nbformat.v4.new_output("error", ename="KernelDied", evalue="exit 1", traceback=[])
    plain = nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])
    assert workers.faults(result_with(died, plain)) == ["KernelDied in cell 1"]
    assert workers.faults(result_with(plain)) == []


class FakeRunner:
    """A runner whose runs finish when the test says (``finish``), with the result it gives."""

    workers, label, where = 2, "on this machine", "on its worker"

    def __init__(self, check: str = ""):
        self.check, self.futures, self.closed = check, {}, False
        self.submitted = threading.Event()

    def run_now(self, plan):
        if self.check:
            raise RuntimeError(self.check)
        return result_with()

    def submit(self, key, folder: Path):
        assert (folder / "plan").read_text() == key  # the plan was written before it was handed on
        self.futures[key] = Future()
        self.submitted.set()
        return self.futures[key]

    def finish(self, key, result=None, error=None):
        assert wait_for(lambda: key in self.futures)
        if error:
            self.futures[key].set_exception(error)
        else:
            self.futures[key].set_result(result if result is not None else result_with())

    def close(self):
        self.closed = True


def wait_for(condition, seconds: float = 10) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return False


def write(key):
    def to(folder: Path):
        folder.mkdir()
        (folder / "plan").write_text(key)
        (folder / run_cache.PLAN_META).write_text('{"models": [], "config": {}}')
    return to


@pytest.fixture
def batch(tmp_path):
    runner = FakeRunner()
    runs = workers.Runs(run_cache.RunCache(tmp_path / "runs"), lambda: runner, tmp_path / "plans")
    (tmp_path / "plans").mkdir()
    runs.fake = runner
    return runs


def test_each_student_is_judged_as_soon_as_their_run_is_over(batch, capsys):
    a, b = "a" * 64, "b" * 64
    batch.plan("alice", a, write(a))
    batch.plan("bob", b, write(b))
    batch.fake.finish(b)  # bob's run is over while the others are still being planned
    assert wait_for(lambda: batch.kept(b))
    batch.plan("carol", b, write(b))  # the same notebook as bob's, which ran just now: no second run
    assert batch.planning_done() == ""
    finished = batch.finished()
    assert sorted([next(finished), next(finished)]) == ["bob", "carol"]  # before alice's run is over
    batch.fake.finish(a)
    assert list(finished) == ["alice"]
    assert batch.planned == ["alice", "bob", "carol"] and batch.fake.closed
    assert a in batch.cache and b in batch.cache and not any(batch.folder.iterdir())  # kept; plans gone
    assert shown(capsys.readouterr().out)[-1] == "Kept 2 of 2 run(s)"


def test_a_faulted_run_is_reported_once_for_every_student_who_shares_it(batch, capsys):
    key = "d" * 64
    batch.plan("bob", key, write(key))
    batch.plan("alice", key, write(key))
    batch.planning_done()
    timeout = nbformat.v4.new_output("error", ename="CellTimeout", evalue="60 s", traceback=[])
    batch.fake.finish(key, result_with(timeout))
    assert sorted(batch.finished()) == ["alice", "bob"]
    assert "  alice, bob: CellTimeout in cell 1" in shown(capsys.readouterr().out)


def test_a_lost_run_is_not_kept_and_its_student_is_still_judged(batch, capsys):
    key = "e" * 64
    batch.plan("dave", key, write(key))
    batch.planning_done()
    batch.fake.finish(key, error=RuntimeError("KilledWorker"))
    assert list(batch.finished()) == ["dave"] and key not in batch.cache
    out = shown(capsys.readouterr().out)
    assert "  dave: the run failed on its worker (RuntimeError: KilledWorker); nbgrader runs it itself" in out
    assert out[-1] == "Kept 0 of 1 run(s)"


def test_when_no_kernel_can_start_no_plan_runs_and_the_batch_says_why(tmp_path):
    runner = FakeRunner(check="ModuleNotFoundError: No module named 'numpy.random'")
    runs = workers.Runs(run_cache.RunCache(tmp_path / "runs"), lambda: runner, tmp_path)
    runs.plan("erin", "f" * 64, write("f" * 64))
    why = runs.planning_done()
    assert why == ("no sandboxed kernel could start on the workers on this machine "
                   "(RuntimeError: ModuleNotFoundError: No module named 'numpy.random')")
    assert not runner.futures and list(runs.finished()) == ["erin"] and runner.closed


def test_a_batch_with_nothing_to_run_starts_no_runner(tmp_path):
    runs = workers.Runs(run_cache.RunCache(tmp_path), lambda: pytest.fail("no runner needed"), tmp_path)
    assert runs.planning_done() == "" and list(runs.finished()) == []


def test_a_dask_workers_warnings_reach_its_log(capfd):
    """Outside an nbgrader app, traitlets drops every log record; a Dask worker must not lose the
    sandbox's warnings (e.g. no cgroup limits)."""
    import logging

    from traitlets.config import LoggingConfigurable

    logger = logging.getLogger("traitlets")
    handlers, level = list(logger.handlers), logger.level
    try:
        workers.log_warnings()
        workers.log_warnings()  # one handler, however many runs a worker does
        LoggingConfigurable().log.warning("Kernel output before it died:\n%s", "student text")
        LoggingConfigurable().log.info("not shown")
    finally:
        logger.handlers[:], logger.level = handlers, level
    assert capfd.readouterr().err.splitlines() == ["WARNING Kernel output before it died:", "student text"]


def test_a_worker_starts_kernels_and_reads_hand_ins_without_importing_torch(tmp_path):
    code = ("import sys, nbformat, pathlib, interp_course.grading.workers; from interp_course.judging.judge import read_outbox; "
            "from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox, HANDIN_ENV_VAR; "
            "g = GradeInSandbox(); g.nb = nbformat.v4.new_notebook(); g._handin_dir = pathlib.Path(sys.argv[1]); "
            "km = g.create_kernel_manager(); print(km.extra_env[HANDIN_ENV_VAR] == sys.argv[1], 'torch' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert ran.stdout == "True False\n", ran.stderr[-2000:]
    from interp_course import handin
    from interp_course.preprocessors.grade_in_sandbox import HANDIN_ENV_VAR

    assert HANDIN_ENV_VAR == handin.ENV_VAR  # the kernel reads the variable the grader sets
    judging = subprocess.run([sys.executable, "-c", "from interp_course.judging import close, Check; print(close.__module__)"],
                             capture_output=True, text=True, check=True)
    assert judging.stdout == "interp_course.judging.compare\n"  # checks.py still finds every name


def test_a_worker_runs_its_next_kernel_while_the_last_runs_figures_are_drawn(monkeypatch, tmp_path):
    """One worker: plan 2's kernel starts while plan 1's figures are still being drawn, but plan
    3's waits (one run at its figures per worker: each holds its hand-ins in memory); each run is
    finished (its future done) only once its figures are; a failure in either half is that run's
    failure."""
    drawing, second_kernel, third_kernel = threading.Event(), threading.Event(), threading.Event()
    release = threading.Event()

    def run_later(name: str) -> Future:
        (tmp_path / name).mkdir()
        (tmp_path / name / "name").write_text(name)
        return local.submit(name, tmp_path / name)  # the plan is read from its folder when its kernel starts

    def run_kernel(plan):
        plan = {"name": plan["name"].decode()}
        if plan["name"] == "broken":
            raise RuntimeError("no sandbox")
        if plan["name"] == "two":
            second_kernel.set()
        if plan["name"] == "three":
            third_kernel.set()
        return "grader", plan["name"], {}

    def draw_figures(ran):
        if ran[1] == "one":
            drawing.set()
            assert release.wait(10)
        if ran[1] == "bad figures":
            raise RuntimeError("Chromium crashed")
        return {"notebook": ran[1]}

    monkeypatch.setattr(workers, "run_kernel", run_kernel)
    monkeypatch.setattr(workers, "draw_figures", draw_figures)
    local = workers._Local(1)
    try:
        one, two, three = (run_later(name) for name in ("one", "two", "three"))
        assert drawing.wait(10) and second_kernel.wait(10)  # the kernel did not wait for the figures
        assert not third_kernel.wait(0.5) and not one.done()  # run 2 waits for a place at the figures
        release.set()
        assert one.result(10) == {"notebook": "one"} and two.result(10) == {"notebook": "two"}
        assert three.result(10) == {"notebook": "three"}
        broken, bad = run_later("broken"), run_later("bad figures")
        assert "no sandbox" in str(broken.exception(10)) and "Chromium" in str(bad.exception(10))
    finally:
        release.set()
        local.close()


def test_the_time_left_is_counted_from_when_every_worker_has_finished_two_runs(monkeypatch, capsys):
    # Two workers, ten notebooks: the first pair takes 14 s (the zygote's imports), the second
    # finishes with the first figures, then a pair every 15 s. The time left follows that pace,
    # not the start's, and is not guessed from runs that finished together.
    clock = iter([0.0, 14.0, 14.1, 29.0, 29.1, 44.0, 44.1, 59.0, 59.1])
    monkeypatch.setattr(workers.time, "perf_counter", lambda: next(clock))
    progress = workers.Progress(2, "on this machine")
    progress.total, progress.more = 10, False
    for ok in (True, True, True, True, False, True, True, True):
        progress.tick(ok)
    lines = shown(capsys.readouterr().out)[1:]
    assert [line.split("ETA ")[1] for line in lines] == [
        "…", "…", "…", "…", "…  (1 failed)", "0:30  (1 failed)", "0:29  (1 failed)", "0:15  (1 failed)"]
    assert lines[0] == "  [##......................] 1/10  14.0 s/notebook  ETA …"
    assert "2/10  7.0 s/notebook" in lines[1]


def test_while_notebooks_are_still_being_planned_the_time_left_is_not_guessed(monkeypatch, capsys):
    clock = iter([0.0, 3.0, 6.0])
    monkeypatch.setattr(workers.time, "perf_counter", lambda: next(clock))
    progress = workers.Progress(1, "on this machine")
    progress.total = 2  # more may come (progress.more stays True)
    progress.tick(True)
    progress.tick(True)
    assert shown(capsys.readouterr().out)[1:] == [
        "  [############............] 1/2+  3.0 s/notebook  ETA …",
        "  [########################] 2/2+  3.0 s/notebook  ETA …",
    ]


# --- the batch's time limit (make grade TIME_LIMIT=) ------------------------------------------
def test_after_the_time_limit_no_run_starts_and_its_students_are_not_judged(tmp_path, capsys):
    runner = FakeRunner()
    runs = workers.Runs(run_cache.RunCache(tmp_path / "runs"), lambda: runner, tmp_path, deadline=1.0)  # long past
    late, lost = "a" * 64, "b" * 64
    runs.plan("alice", late, write(late))
    runs.plan("bob", lost, write(lost))
    runs.planning_done()
    runner.finish(late, error=workers.OutOfTime("the batch's time limit ran out"))
    runner.finish(lost, error=RuntimeError("KilledWorker"))  # lost after the limit: not run again either
    assert sorted(runs.finished()) == ["alice", "bob"] and runs.late("alice") and runs.late("bob")
    assert shown(capsys.readouterr().out)[-1] == "Kept 0 of 1 run(s); 1 not started: the batch's time limit ran out"


def test_a_local_worker_starts_no_kernel_after_the_time_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(workers, "run_kernel", lambda plan: pytest.fail("no kernel after the limit"))
    local = workers._Local(1, deadline=1.0)
    try:
        (tmp_path / "plan").mkdir()
        with pytest.raises(workers.OutOfTime):
            local.submit("k", tmp_path / "plan").result(10)
    finally:
        local.close()


def test_the_time_limit_reads_like_a_duration():
    import argparse

    from interp_course.cli import duration

    assert [duration(t) for t in ("600", "90s", "45m", "1.5h")] == [600, 90, 2700, 5400]
    for bad in ("0", "-5m", "45 minutes", "m", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)


def test_a_student_with_two_notebooks_is_judged_once_when_both_runs_are_over(batch):
    """An assignment of two notebooks: two runs for one student, who is judged once, after both;
    the judging pass judges only from runs this batch kept."""
    one, two = "1" * 64, "2" * 64
    batch.plan("alice", one, write(one))
    batch.fake.finish(one)  # over while alice's second notebook is still being planned
    assert wait_for(lambda: batch.kept(one))
    batch.plan("alice", two, write(two))
    assert batch.planning_done() == "" and batch.planned == ["alice"]
    finished = batch.finished()
    batch.fake.finish(two, error=RuntimeError("KilledWorker"))
    assert list(finished) == ["alice"] and batch.kept(one) and not batch.kept(two)


def test_when_the_workers_cannot_start_the_batch_refuses(tmp_path):
    def no_scheduler():
        raise OSError("Timed out trying to connect to tcp://10.0.0.5:8786")

    runs = workers.Runs(run_cache.RunCache(tmp_path), no_scheduler, tmp_path)
    runs.plan("erin", "f" * 64, write("f" * 64))
    assert runs.planning_done() == "the workers could not start (OSError: Timed out trying to connect to tcp://10.0.0.5:8786)"
    assert list(runs.finished()) == ["erin"]


def test_a_runner_that_fails_to_close_still_lets_every_student_be_judged(batch, capsys):
    def broken_close():
        raise TimeoutError("the scheduler did not answer")

    batch.fake.close = broken_close
    key = "c" * 64
    batch.plan("carol", key, write(key))
    batch.planning_done()
    batch.fake.finish(key)
    assert list(batch.finished()) == ["carol"]
    assert "The workers did not close cleanly (TimeoutError: the scheduler did not answer)" in capsys.readouterr().out
