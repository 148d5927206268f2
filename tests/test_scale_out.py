"""Grading at course scale: kept runs, and sandboxed runs sent to a real Dask cluster.

One small course is graded four ways through `python -m interp_course grade` (what `make grade`
runs): with two local workers; again after a check's message changed, which must judge every
submission from its kept run without starting a kernel; again with ``--rerun-faulted``, which runs
only the notebook whose kernel died; and, in a copy of the course, on a Dask scheduler with two
workers started here on loopback, one of which is killed mid-batch. The grades must be the same
each time.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PUZZLE1, grader_tmp, make_course, release, run_nbgrader, submit
from interp_course.security import grader_user
from interp_course.grading.batch import apply_manual_grades
from interp_course.cli import nbgrader_env
from interp_course.course import Course

STUDENTS = ["full-marks", "normalize-wrong-axis", "fault-kernel-exit", "blank"]
OLD_TEXT = "mean pairwise cosine after subtracting the mean embedding"
NEW_TEXT = "the mean cosine once the shared mean is removed (reworded)"


def grade(root: Path, *options: str, wait_for=None) -> subprocess.CompletedProcess:
    """`python -m interp_course grade` as the instructor runs it; ``wait_for(line)`` sees each line."""
    env = {**nbgrader_env(), "TMPDIR": str(grader_tmp(root))}
    proc = subprocess.Popen([sys.executable, "-m", "interp_course", "--root", str(root), "grade", *options],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if wait_for:
            wait_for(line)
    return subprocess.CompletedProcess(proc.args, proc.wait(), "".join(lines))


def scores(root: Path) -> dict[str, tuple[str, str]]:
    with open(root / "grades.csv", newline="") as f:
        return {r["student_id"]: (r["score"], r["max_score"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def local(courses_dir) -> tuple[Path, subprocess.CompletedProcess]:
    root = release(make_course(courses_dir / "scale-local"))
    submit(root, PUZZLE1, STUDENTS, Course().corpus(PUZZLE1))
    result = grade(root, "--workers", "2")
    assert result.returncode == 0, result.stdout[-3000:]
    return root, result, scores(root)  # the scores before any test changes them


def test_two_local_workers_grade_every_submission(local):
    root, result, _ = local
    assert "Running the notebooks in the sandbox as they are planned: 2 worker(s) on this machine" in result.stdout
    assert re.search(r"\] 4/4 ", result.stdout) and "Kept 4 of 4 run(s)" in result.stdout, result.stdout[-2000:]
    assert "Kernels: 4 submission(s) run in the sandbox on 2 local worker(s), 0 judged from kept runs" in result.stdout
    assert scores(root)["full-marks"][0] == "18.0" and scores(root)["blank"][0] == "0.0"
    assert "SAWarning" not in result.stdout


def test_a_changed_message_is_regraded_without_a_kernel_and_manual_grades_stay(local):
    root, _, _ = local
    checks = root / "grader_tests" / PUZZLE1 / "checks.py"
    assert OLD_TEXT in checks.read_text()
    checks.write_text(checks.read_text().replace(OLD_TEXT, NEW_TEXT))
    release(root)  # the instructor's `make release` records the changed checks
    # A TA has graded the explanation by hand meanwhile: a regrade must keep it.
    apply_manual_grades(Course(root), PUZZLE1, {"full-marks": {"explanation": 2.5}})
    run_nbgrader(root, "export", "--to", str(root / "grades.csv"))
    before = scores(root)
    assert before["full-marks"][0] == "20.5"
    start = time.perf_counter()
    again = grade(root)
    seconds = time.perf_counter() - start
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Running" not in again.stdout  # no plan went to a worker
    assert "Kernels: 0 submission(s) run in the sandbox" in again.stdout
    assert "4 judged from kept runs" in again.stdout
    # The kernel that died is not run again, and the instructor is told so, with how to.
    assert "Of those, 1 faulted when they ran and were not run again (`make grade RERUN_FAULTED=1`" in again.stdout
    assert re.search(r"^  fault-kernel-exit: KernelDied in cell \d+$", again.stdout, re.M), again.stdout[-2000:]
    assert scores(root) == before
    feedback = (root / "feedback" / "fault-kernel-exit" / PUZZLE1 / "puzzle1.html").read_text()
    assert NEW_TEXT in feedback and OLD_TEXT not in feedback
    print(f"\nregraded {len(STUDENTS)} submissions from kept runs in {seconds:.1f} s, in all")


def test_rerun_faulted_runs_only_the_notebook_whose_kernel_died_again(local):
    root, _, _ = local
    before = scores(root)
    again = grade(root, "--rerun-faulted")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Kernels: 1 submission(s) run in the sandbox" in again.stdout and "3 judged from kept runs" in again.stdout
    assert re.search(r"^  fault-kernel-exit: KernelDied in cell \d+$", again.stdout, re.M)  # the worker's line
    assert "Of those" not in again.stdout  # its new run is this batch's own
    assert scores(root) == before


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**nbgrader_env(), "TMPDIR": str(log.parent)}
    if grader_user.is_root():
        argv, env = grader_user.command(argv), grader_user.environment(env)
    return subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=log.parent,
                            start_new_session=True)


@pytest.fixture
def cluster(courses_dir):
    """A Dask scheduler and two single-threaded workers on loopback, as the grading account."""
    where = courses_dir / "dask"
    where.mkdir(mode=0o755)
    grader_user.hand_over(where)
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler_file = where / "scheduler.json"
    procs = [_start([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(scheduler_file)], where / "scheduler.log")]
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.5)
    address = json.loads(scheduler_file.read_text())["address"]
    workers = [_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                       "--no-nanny", "--name", f"w{i}", "--no-dashboard", "--local-directory", str(where / f"w{i}")],
                      where / f"worker{i}.log") for i in (1, 2)]
    procs += workers
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield address, workers
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_a_dask_cluster_grades_the_same_after_losing_a_worker(local, cluster, courses_dir):
    address, workers = cluster
    root = release(make_course(courses_dir / "scale-dask"))
    submit(root, PUZZLE1, STUDENTS, Course().corpus(PUZZLE1))
    killed = []

    def kill_one_after_the_first_run(line: str) -> None:
        if not killed and re.search(r"\] 1/4\+? ", line):
            os.killpg(workers[0].pid, signal.SIGKILL)
            killed.append(line)

    result = grade(root, "--scheduler", address, "--no-cache", wait_for=kill_one_after_the_first_run)
    assert result.returncode == 0, result.stdout[-3000:]
    assert killed, result.stdout[-2000:]
    assert f"2 worker(s) of the Dask scheduler at {address}" in result.stdout
    assert scores(root) == local[2]
    assert (root / "feedback" / "full-marks" / PUZZLE1 / "puzzle1.html").is_file()
    shutil.rmtree(root / "gradebook" / "runs", ignore_errors=True)
