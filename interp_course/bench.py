"""`make bench`: seconds per submission of `make grade`, measured side by side with stock nbgrader.

In one run on this machine, in scratch courses under $TMPDIR, each grading the same N copies of
the corpus's full-marks notebook with the same three steps (autograde, generate_feedback,
export):

1. `make grade` as shipped (sandbox, unprivileged account, cgroups), ``--workers`` = the cores,
   every notebook run afresh (``--no-cache``);
2. the same with one worker, for the scale-out ratio;
3. the same batch again with its runs kept: judged without a kernel (a regrade);
4. stock nbgrader (its own ``Execute``: no sandbox, the test cells in the kernel) on the same
   notebook. Its test cells find no grader to hand in to and raise, so it does a little less
   work than a real stock grader would: the ratio against it is, if anything, pessimistic;
5. stock nbgrader on a notebook that only does ``import torch``.

It prints each figure and the ratios the scale targets are stated in.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from interp_course import cli, grader_user, models
from interp_course.course import CHECKOUT, Course

ASSIGNMENT = "puzzle1"


def _course(dest: Path) -> Course:
    """A scratch course: the engine's config and Puzzle 1's content, released."""
    dest.mkdir(mode=0o755)
    shutil.copy(CHECKOUT / "nbgrader_config.py", dest)
    content = Course(CHECKOUT)
    shutil.copytree(content.source(ASSIGNMENT), dest / "source" / ASSIGNMENT)
    shutil.copytree(content.solutions(ASSIGNMENT), dest / "solutions" / ASSIGNMENT)
    shutil.copytree(content.grader_tests(ASSIGNMENT), dest / "grader_tests" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns("submissions", "__pycache__"))
    course = Course(dest)
    cli.release(course, [ASSIGNMENT])
    return course


def _submit(root: Path, assignment: str, notebook: Path, n: int, name: str) -> None:
    """``n`` students handing in ``notebook`` as ``name``, each copy with its own comment in a
    code cell: identical notebooks would share one kept run, and be run only once."""
    nb = nbformat.read(notebook, as_version=4)
    # A student's own (solution) cell: nbgrader would overwrite a locked one with the source's.
    first = next((cell for cell in nb.cells if cell.cell_type == "code"
                  and cell.metadata.get("nbgrader", {}).get("solution")), None) or nb.cells[0]
    source = first.source
    for i in range(n):
        first.source = f"{source}\n# copy {i}"
        target = root / "submitted" / f"student{i:03d}" / assignment / name
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)


def _timed(argv: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:6])}... failed ({result.returncode}):\n"
                         f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start


def ours(root: Path, *options: str) -> float:
    env = {**cli.nbgrader_env(), "TMPDIR": str(root.parent)}
    return _timed([sys.executable, "-m", "interp_course", "--root", str(root), "grade", *options], root, env)


def stock(root: Path, assignment: str) -> float:
    """Stock nbgrader's three steps, as the grading account; the course guard is not loaded."""
    env = {**cli.nbgrader_env(), **models.model_env(), "JUPYTER_NO_CONFIG": "1", "TMPDIR": str(root.parent)}
    grader_user.hand_over(root)
    total = 0.0
    for step in (["autograde", assignment, "--create", "--force"], ["generate_feedback", assignment, "--force"],
                 ["export"]):
        argv, step_env = [sys.executable, "-m", "nbgrader", *step, "--log-level=ERROR"], env
        if grader_user.is_root():
            argv, step_env = grader_user.command(argv), grader_user.environment(env)
        total += _timed(argv, root, step_env)
    return total


def _stock_course(dest: Path, assignment: str, source: Path) -> Path:
    """A course with stock nbgrader's default pipeline: only a course id and a cell timeout."""
    (dest / "source" / assignment).mkdir(parents=True)
    shutil.copy(source, dest / "source" / assignment / source.name)
    (dest / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'bench-stock'\nc.Execute.timeout = 120\n")
    env = {**cli.nbgrader_env(), "JUPYTER_NO_CONFIG": "1"}
    _timed([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--log-level=ERROR"],
           dest, env)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp_course.bench", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--submissions", type=int, default=8)
    args = parser.parse_args(argv)
    n, cores = args.submissions, os.cpu_count() or 1
    full_marks = Course(CHECKOUT).corpus(ASSIGNMENT) / "full-marks.ipynb"
    base = Path(tempfile.mkdtemp(prefix="interp-bench-"))
    base.chmod(0o755)
    print(f"Benchmark: {n} copies of {full_marks.name}, {cores} cores, in {base}", flush=True)
    try:
        course = _course(base / "ours")
        _submit(course.root, ASSIGNMENT, full_marks, n, "puzzle1.ipynb")
        figures = {}
        figures["make grade"] = ours(course.root, "--workers", str(cores), "--no-cache") / n
        print(f"  make grade, {cores} workers, fresh kernels: {figures['make grade']:.2f} s/submission", flush=True)
        figures["one worker"] = ours(course.root, "--workers", "1", "--no-cache") / n
        print(f"  make grade, 1 worker, fresh kernels:  {figures['one worker']:.2f} s/submission", flush=True)
        figures["regrade"] = ours(course.root) / n
        print(f"  make grade again, runs kept:          {figures['regrade']:.2f} s/submission", flush=True)

        stock_root = _stock_course(base / "stock", ASSIGNMENT, course.source(ASSIGNMENT) / "puzzle1.ipynb")
        _submit(stock_root, ASSIGNMENT, full_marks, n, "puzzle1.ipynb")
        figures["stock"] = stock(stock_root, ASSIGNMENT) / n
        print(f"  stock nbgrader, same notebook:        {figures['stock']:.2f} s/submission", flush=True)

        trivial = base / "trivial.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")]), trivial)
        trivial_root = _stock_course(base / "stock-trivial", "trivial", trivial)
        _submit(trivial_root, "trivial", trivial, n, "trivial.ipynb")
        figures["trivial"] = stock(trivial_root, "trivial") / n
        print(f"  stock nbgrader, `import torch` only:  {figures['trivial']:.2f} s/submission", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\nRatios (targets in parentheses):")
    print(f"  make grade / stock nbgrader, same notebook:   {figures['make grade'] / figures['stock']:.2f} (<= 0.5)")
    print(f"  make grade / stock nbgrader, `import torch`:  {figures['make grade'] / figures['trivial']:.2f} (<= 1.0)")
    print(f"  throughput, {cores} workers / 1 worker:         {figures['one worker'] / figures['make grade']:.2f} (>= 1.7)")
    print(f"  regrade from kept runs:                       {figures['regrade']:.2f} s/submission (<= 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
