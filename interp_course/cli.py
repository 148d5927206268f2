"""Course commands: ``python -m interp_course {setup,release,grade,demo}``.

Each step runs the real nbgrader command line from the course root, so what the demo shows is
what an instructor gets by typing ``nbgrader generate_assignment|autograde|generate_feedback|
export`` themselves (nbgrader_config.py wires in the sandboxed grader).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from interp_course import models

ROOT = models.COURSE_ROOT
ASSIGNMENT = "puzzle1"
NOTEBOOK = "puzzle1"
COURSE_ID = "mech-interp-puzzles"


def nbgrader_env() -> dict[str, str]:
    """nbgrader runs `alembic` from PATH to migrate the gradebook: put this venv's bin/ first."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def nbgrader(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real nbgrader CLI in the course root with this interpreter."""
    print("$ nbgrader " + " ".join(args), flush=True)
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=ROOT, check=check, env=nbgrader_env())


def setup(model_source: str) -> None:
    if model_source == "auto":
        model_source = "hub" if models.hub_reachable() else "stand-ins"
    settings = models.write_settings(model_source)
    if model_source == "stand-ins":
        from interp_course.standins import build_standins

        build_standins(Path(settings["hf_home"]))
    print(f"Model source: {models.describe_source(settings)} (saved in {models.SETTINGS_FILE.name})")


def release() -> None:
    """Regenerate release/ from source/ (the only way release/ should change)."""
    nbgrader("generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN")


def submitted_students() -> list[str]:
    folder = ROOT / "submitted"
    return sorted(p.name for p in folder.iterdir() if (p / ASSIGNMENT).is_dir()) if folder.is_dir() else []


def grade(manual_grades: dict | None = None) -> list[dict]:
    """Autograde everything in submitted/, write feedback/ and grades.csv, print a table."""
    print(f"Grading with {models.describe_source()}")
    students = submitted_students()
    if not students:
        print("Nothing in submitted/: put notebooks at submitted/<student>/puzzle1/puzzle1.ipynb")
        return []
    start = time.perf_counter()
    # One nbgrader run for the whole batch; a failing student never stops the others.
    nbgrader("autograde", ASSIGNMENT, "--create", "--force", "--log-level=WARN", check=False)
    elapsed = time.perf_counter() - start
    if manual_grades:
        apply_manual_grades(manual_grades)
    nbgrader("generate_feedback", ASSIGNMENT, "--force", "--log-level=WARN", check=False)
    nbgrader("export", "--to", str(ROOT / "grades.csv"), "--log-level=WARN")
    rows = read_grades(students)
    print_table(rows)
    print(f"Autograded {len(students)} submissions in {elapsed:.0f} s ({elapsed / len(students):.1f} s each).")
    return rows


def read_grades(students: list[str]) -> list[dict]:
    with open(ROOT / "grades.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == ASSIGNMENT and r["student_id"] in students]
    return sorted(rows, key=lambda r: r["student_id"])


def print_table(rows: list[dict]) -> None:
    print(f"\n{'student':<24}{'score':>8}{'max score':>11}")
    for row in rows:
        print(f"{row['student_id']:<24}{float(row['score']):>8g}{float(row['max_score']):>11g}")
    print()


def demo() -> None:
    """Release, submit the bundled example students, autograde, play the TA, feedback, export."""
    sys.path.insert(0, str(ROOT))  # grader_tests/ sits at the course root, not in the package
    from grader_tests.corpus import OUT, SUBMISSIONS

    release()
    examples = [s for s in SUBMISSIONS if s.group == "demo"]
    if (ROOT / "submitted").exists():
        shutil.rmtree(ROOT / "submitted")
    for example in examples:
        target = ROOT / "submitted" / example.name / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(OUT / f"{example.name}.ipynb", target)
    print(f"Submitted {len(examples)} example notebooks from {OUT.relative_to(ROOT)}/")
    # The demo plays the TA for the hand-graded explanation, with the scores in corpus.py.
    grade(manual_grades={s.name: s.manual for s in examples if s.manual})


def apply_manual_grades(grades: dict[str, dict[str, float]]) -> None:
    """Enter a TA's manual scores (what formgrader would do) into the gradebook."""
    from nbgrader.api import Gradebook

    print("Entering the TA's manual grades for the explanation (what formgrader would do)")
    with Gradebook(f"sqlite:///{ROOT / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        for student, cells in grades.items():
            for grade_id, score in cells.items():
                gb.find_grade(grade_id, NOTEBOOK, ASSIGNMENT, student).manual_score = score
        gb.db.commit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m interp_course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="choose the model source (builds the stand-ins if chosen)")
    p.add_argument("--model-source", choices=["auto", "stand-ins", "hub"], required=True)
    sub.add_parser("release", help="nbgrader generate_assignment: source/ -> release/")
    sub.add_parser("grade", help="autograde submitted/, generate feedback, export grades.csv")
    sub.add_parser("demo", help="release, submit the bundled examples, grade them")
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.model_source)
    else:
        {"release": release, "grade": grade, "demo": demo}[args.command]()


if __name__ == "__main__":
    main()
