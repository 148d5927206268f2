"""What the workers print: one line per faulted run, naming the students it was for."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import nbformat

from interp_course.grading import run_cache, workers
from interp_course.judging.handin_files import RawHandIn


def result_with(*outputs):
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = list(outputs)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])
    return run_cache.entry_files(nb, {"test_a": RawHandIn(problem="nothing was handed in")})


def test_kernel_faults_are_named_with_their_cell():
    died = nbformat.v4.new_output("error", ename="KernelDied", evalue="exit 1", traceback=[])
    plain = nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])
    assert workers.faults(result_with(died, plain)) == ["KernelDied in cell 1"]
    assert workers.faults(result_with(plain)) == []


def test_a_faulted_run_is_reported_once_for_every_student_who_shares_it(tmp_path, capsys):
    key = "d" * 64
    for student in ("bob", "alice"):
        run_cache.mark_planned(tmp_path, student, key)
    timeout = nbformat.v4.new_output("error", ename="CellTimeout", evalue="60 s", traceback=[])
    workers._report_faults(tmp_path, key, result_with(timeout))
    assert capsys.readouterr().out == "  alice, bob: CellTimeout in cell 1\n"


def test_a_workers_warnings_reach_the_grader_as_marked_log_lines(capfd):
    """Outside an nbgrader app, traitlets drops every log record; a worker must not lose the
    sandbox's warnings (e.g. no cgroup limits), nor print a student's output on the terminal."""
    import logging

    from traitlets.config import LoggingConfigurable

    logger = logging.getLogger("traitlets")
    handlers, level = list(logger.handlers), logger.level
    try:
        workers.log_warnings()
        workers.log_warnings()  # one handler, however many runs a worker does
        LoggingConfigurable().log.warning("Kernel output before it died:\n%s", "student text\nmore")
        LoggingConfigurable().log.info("not shown")
    finally:
        logger.handlers[:], logger.level = handlers, level
    assert capfd.readouterr().err.splitlines() == [
        "[worker] WARNING Kernel output before it died:", "[worker] student text", "[worker] more"]


def test_following_plans_sees_each_new_plan_once_until_stdin_ends(tmp_path):
    plans_dir = tmp_path / "plans"
    plans_dir.mkdir()
    read, write = os.pipe()
    with os.fdopen(read) as told, os.fdopen(write, "w") as tell:
        plans = workers.Plans(plans_dir, follow=True, told=told)
        assert plans.new() == []
        (plans_dir / ("a" * 64)).mkdir()
        (plans_dir / ".half-written.tmp").mkdir()  # write_plan's temporary name: not a plan yet
        assert plans.new() == ["a" * 64]
        (plans_dir / ("b" * 64)).mkdir()
        assert plans.new() == ["b" * 64] and plans.new() == []
        start = time.perf_counter()
        plans.wait(0.3)  # nothing said: waits the whole time, still planning
        assert plans.planning and time.perf_counter() - start >= 0.25
        tell.close()  # the grader's signal: the planning pass has exited
        plans.wait(30)
        assert not plans.planning
    assert not workers.Plans(plans_dir, follow=False).planning  # plain: every plan is there already


def test_new_plans_come_in_the_order_they_were_written(tmp_path):
    """The judging pass takes the students in planning order: the runs start in that order too."""
    for n, key in enumerate(["c" * 64, "a" * 64, "b" * 64]):
        (tmp_path / key).mkdir()
        os.utime(tmp_path / key, ns=(n * 10**9, n * 10**9))
    assert workers.Plans(tmp_path, follow=False).new() == ["c" * 64, "a" * 64, "b" * 64]


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


def test_a_worker_runs_its_next_kernel_while_the_last_runs_figures_are_drawn(monkeypatch):
    """One worker: plan 2's kernel starts while plan 1's figures are still being drawn, but plan
    3's waits (one run at its figures per worker: each holds its hand-ins in memory); each run is
    finished (its future done) only once its figures are; a failure in either half is that run's
    failure."""
    import threading

    drawing, second_kernel, third_kernel = threading.Event(), threading.Event(), threading.Event()
    release = threading.Event()

    def run_kernel(plan):
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
        one = local.submit("k1", {"name": "one"})
        two = local.submit("k2", {"name": "two"})
        three = local.submit("k3", {"name": "three"})
        assert drawing.wait(10) and second_kernel.wait(10)  # the kernel did not wait for the figures
        assert not third_kernel.wait(0.5) and not one.done()  # run 2 waits for a place at the figures
        release.set()
        assert one.result(10) == {"notebook": "one"} and two.result(10) == {"notebook": "two"}
        assert three.result(10) == {"notebook": "three"}
        broken, bad = local.submit("k3", {"name": "broken"}), local.submit("k4", {"name": "bad figures"})
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
    lines = capsys.readouterr().out.splitlines()[1:]
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
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  [############............] 1/2+  3.0 s/notebook  ETA …",
        "  [########################] 2/2+  3.0 s/notebook  ETA …",
    ]
