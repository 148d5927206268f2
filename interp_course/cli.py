"""Course commands: ``python -m interp_course {setup,release,grade,demo,corpus}``.

Each step runs the real nbgrader command line from the course root, so what the demo shows is
what an instructor gets by typing ``nbgrader generate_assignment|autograde|generate_feedback|
export`` themselves (nbgrader_config.py wires in the sandboxed grader). Run as root, every step
that touches submissions runs as the unprivileged grading account (``interp_course.grader_user``),
and ``grade`` first checks that the safe pipeline is in force (``interp_course.guard``): when it
is not, it refuses with exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from interp_course import grader_user, guard, manifest, models
from interp_course.course import COURSE_ID, CHECKOUT, Course


def nbgrader_env() -> dict[str, str]:
    """nbgrader runs `alembic` from PATH to migrate the gradebook: put this venv's bin/ first.

    A config file that fails to load stops nbgrader instead of leaving it on its stock pipeline.
    """
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR": "1"}


def nbgrader(course: Course, *args: str, check: bool = True, as_grader: bool = True) -> subprocess.CompletedProcess:
    """Run the real nbgrader CLI in the course root with this interpreter (as the grading account)."""
    print("$ nbgrader " + " ".join(args), flush=True)
    argv, env = [sys.executable, "-m", "nbgrader", *args], nbgrader_env()
    if as_grader:
        argv, env = grader_user.command(argv), grader_user.environment(env)
    return subprocess.run(argv, cwd=course.root, check=check, env=env)


def setup(model_source: str) -> None:
    if model_source == "auto":
        model_source = "hub" if models.hub_reachable() else "stand-ins"
    settings = models.write_settings(model_source)
    if model_source == "stand-ins":
        from interp_course.standins import build_standins

        build_standins(Path(settings["hf_home"]))
    print(f"Model source: {models.describe_source(settings)} (saved in {models.SETTINGS_FILE.name})")
    setup_grading(settings)


def setup_grading(settings: dict) -> None:
    """As root: the unprivileged grading account, and what it must reach. Always: nbgrader's guard."""
    if grader_user.is_root():
        user = grader_user.ensure_account()
        hf_home, _ = models.cache_folders([], settings)
        for folder in grader_user.grant_traversal([*grader_user.python_paths(), CHECKOUT, hf_home]):
            print(f"Let {user.pw_name} pass through {folder} (ACL u:{user.pw_name}:x)")
        smoke = subprocess.run(grader_user.command([sys.executable, "-c", "import interp_course, nbgrader, torch"]),
                               env=grader_user.environment(nbgrader_env()), cwd="/", capture_output=True, text=True)
        if smoke.returncode != 0:
            raise guard.Refused(f"{user.pw_name} cannot run this venv's Python: {smoke.stderr.strip()[-300:]}")
        print(f"Grading runs as the unprivileged account {user.pw_name}")
    print(f"Installed the nbgrader guard at {guard.install_env_guard()}")


def release(course: Course, assignments: list[str]) -> None:
    """Regenerate release/<a>/ from source/<a>/ (the only way release/ should change), then record
    the instructor's files in the manifest that grading checks them against."""
    grader_user.prepare_state(course)  # the gradebook's folder, which generate_assignment writes
    for assignment in assignments:
        # The instructor's own step: it writes release/, which the grading account must not.
        nbgrader(course, "generate_assignment", assignment, "--force", "--log-level=WARN", as_grader=False)
    grader_user.prepare_state(course)  # hand the gradebook root just wrote back to the grading account
    print(f"Recorded the course files in {manifest.write(course).name}")


def corpus(course: Course, assignments: list[str]) -> None:
    from interp_course import corpus as corpus_builder

    for assignment in assignments:
        for path in corpus_builder.write_all(course, assignment):
            print(path.relative_to(course.root))


def submitted_students(course: Course, assignment: str) -> list[str]:
    folder = course.submitted
    return sorted(p.name for p in folder.iterdir() if (p / assignment).is_dir()) if folder.is_dir() else []


def grade(course: Course, assignments: list[str], manual_grades: dict | None = None) -> list[dict]:
    """Autograde everything in submitted/, write feedback/ and grades.csv, print a table."""
    guard.check_grading(course)
    grader_user.prepare_state(course)
    print(f"Grading with {models.describe_source()}")
    rows = []
    for assignment in assignments:
        students = submitted_students(course, assignment)
        if not students:
            print(f"Nothing in submitted/ for {assignment}: put notebooks at "
                  f"submitted/<student>/{assignment}/<notebook>.ipynb")
            continue
        start = time.perf_counter()
        # One nbgrader run for the whole batch; a failing student never stops the others.
        autograde = nbgrader(course, "autograde", assignment, "--create", "--force", "--log-level=WARN", check=False)
        if autograde.returncode == 2:
            raise guard.Refused("nbgrader's own guard refused to autograde (its reason is above)")
        elapsed = time.perf_counter() - start
        if manual_grades and manual_grades.get(assignment):
            apply_manual_grades(course, assignment, manual_grades[assignment])
        feedback = nbgrader(course, "generate_feedback", assignment, "--force", "--log-level=WARN", check=False)
        if feedback.returncode == 2:
            raise guard.Refused("nbgrader's own guard refused to generate feedback (its reason is above)")
        nbgrader(course, "export", "--to", str(course.grades_csv), "--log-level=WARN")
        graded = read_grades(course, assignment, students)
        print_table(assignment, graded)
        print(f"Autograded {len(students)} submissions of {assignment} in {elapsed:.0f} s "
              f"({elapsed / len(students):.1f} s each).")
        rows += graded
    return rows


def read_grades(course: Course, assignment: str, students: list[str]) -> list[dict]:
    with open(course.grades_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == assignment and r["student_id"] in students]
    return sorted(rows, key=lambda r: r["student_id"])


def print_table(assignment: str, rows: list[dict]) -> None:
    print(f"\n{assignment:<24}{'score':>8}{'max score':>11}")
    for row in rows:
        print(f"{row['student_id']:<24}{float(row['score']):>8g}{float(row['max_score']):>11g}")
    print()


def demo(course: Course, assignments: list[str]) -> None:
    """Release, submit each assignment's demo students, autograde, play the TA, feedback, export."""
    from interp_course import corpus as corpus_builder

    release(course, assignments)
    if course.submitted.exists():
        shutil.rmtree(course.submitted)
    manual = {}
    for assignment in assignments:
        examples = [s for s in corpus_builder.load(course, assignment).SUBMISSIONS if s.group == "demo"]
        notebook = corpus_builder.notebook_name(course, assignment)
        for example in examples:
            target = course.submitted / example.name / assignment / f"{notebook}.ipynb"
            target.parent.mkdir(parents=True)
            shutil.copy(course.corpus(assignment) / f"{example.name}.ipynb", target)
        print(f"Submitted {len(examples)} example notebooks from {course.corpus(assignment).relative_to(course.root)}/")
        # The demo plays the TA for the hand-graded cells, with the scores in the corpus.
        manual[assignment] = {s.name: s.manual for s in examples if s.manual}
    grade(course, assignments, manual_grades=manual)


def apply_manual_grades(course: Course, assignment: str, grades: dict[str, dict[str, float]]) -> None:
    """Enter a TA's manual scores (what formgrader would do) into the gradebook, as the grading account."""
    if grader_user.is_root():
        code = ("import json, sys; from interp_course.cli import apply_manual_grades; from interp_course.course "
                "import Course; apply_manual_grades(Course(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))")
        argv = grader_user.command([sys.executable, "-c", code, str(course.root), assignment, json.dumps(grades)])
        subprocess.run(argv, cwd=course.root, env=grader_user.environment(nbgrader_env()), check=True)
        return
    from nbgrader.api import Gradebook

    from interp_course.corpus import notebook_name

    print("Entering the TA's manual grades (what formgrader would do)")
    notebook = notebook_name(course, assignment)
    with Gradebook(course.db_url, course_id=COURSE_ID) as gb:
        for student, cells in grades.items():
            for grade_id, score in cells.items():
                gb.find_grade(grade_id, notebook, assignment, student).manual_score = score
        gb.db.commit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m interp_course", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("INTERP_COURSE_ROOT", CHECKOUT)),
                        help="course root (default: this checkout, or $INTERP_COURSE_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="choose the model source (builds the stand-ins if chosen)")
    p.add_argument("--model-source", choices=["auto", "stand-ins", "hub"], required=True)
    for name, text in [("release", "nbgrader generate_assignment: source/<a> -> release/<a>"),
                       ("grade", "autograde submitted/, generate feedback, export grades.csv"),
                       ("demo", "release, submit the bundled example students, grade them"),
                       ("corpus", "write grader_tests/<a>/submissions/ from grader_tests/<a>/corpus.py")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--assignment", action="append", dest="assignments", metavar="NAME",
                       help="an assignment (repeatable); default: every assignment "
                       + ("with a source notebook" if name in ("release", "demo") else "released"))
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            setup(args.model_source)
            return
        course = Course(args.root)
        default = course.assignments() if args.command in ("release", "demo") else course.released_assignments()
        assignments = args.assignments or default
        {"release": release, "grade": grade, "demo": demo, "corpus": corpus}[args.command](course, assignments)
    except (guard.Refused, grader_user.AccountMissing) as reason:
        guard.refuse(reason)


if __name__ == "__main__":
    main()
