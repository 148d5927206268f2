"""`python -m interp_course grade` with an honest student beside hostile ones (issue 28).

One scratch course, graded once. Each attacker below broke the batch, flooded it or forged a CSV
on a5f09fe; now each is graded or named on a NOT GRADED line, the honest student is graded exactly
as alone (full marks of the autograded cells), and every CSV the course writes reads back, with
the csv module, the gradebook's numbers.

- row 6: a 4 KB notebook nested 2,000 deep, and one with a 5,000-digit integer (they stopped
  staging, so nobody was graded);
- row 7: 20 markdown cells of 5,000 formulas each (0.9 MB: a 13 MB feedback page, 30 s or more);
- row 8: a display handle updated from a later cell with megabytes (update_display_data skipped
  the output cap: a 60 MB notebook and feedback page);
- row 9: a hand-in padded with a 20 MB tensor (kept in full, per cell and per run);
- row 10: the honest notebook saved without cell ids (a new random key at every read: it was run
  again by the judging pass, and at every regrade);
- row 12: ids that forge a row of grades.csv or are formulas in a spreadsheet;
- row 13: a folder name with a newline (nbgrader stopped there: later students not graded).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbgrader.api import Gradebook

from conftest import PUZZLE1
from interp_course.cli import nbgrader_env
from interp_course.course import Course
from interp_course.feedback.math_render import MAX_FORMULAS
from test_grade_command import AUTO_MAX, BLANK, FULL_MARKS, hand_in, released_course, run_grade

FORGER = "mallory,,,,25.0,0.0,25.0,25.0"
FORMULA = '=HYPERLINK("evil.example","click")'
NEWLINE = "aa\nbb"  # sorts before every graded student
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def with_cells(notebook: bytes, *sources: str, markdown: bool = False) -> bytes:
    nb = nbformat.reads(notebook.decode(), as_version=4)
    new_cell = nbformat.v4.new_markdown_cell if markdown else nbformat.v4.new_code_cell
    nb.cells += [new_cell(source) for source in sources]
    return nbformat.writes(nb).encode()


def without_cell_ids(notebook: bytes) -> bytes:
    data = json.loads(notebook)
    for cell in data["cells"]:
        cell.pop("id", None)
    data["nbformat_minor"] = 5
    return json.dumps(data, indent=1).encode()


def deep_notebook(levels: int = 2000) -> bytes:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["x"] = "DEEP"
    return nbformat.writes(nb).replace('"DEEP"', "[" * levels + "]" * levels).encode()


def big_integer_notebook() -> bytes:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["n"] = 1
    return nbformat.writes(nb).replace('"n": 1', '"n": ' + "9" * 5000).encode()


MATH_BOMB = " ".join(["$a_{c}$"] * 5000)
DISPLAY_FLOOD = (
    "from IPython.display import display\nhandle = display('small', display_id=True)",
    "for _ in range(5):\n    handle.update('u' * 4_000_000)",
)
# Every hand-in of the first test cell padded (a student rewrites hand_in's writer in the kernel).
PADDING = ("import torch\nimport interp_course.handin as _h\n_write = _h._write\n"
           "def _padded(outbox, grade_id, tensors, report):\n"
           "    if grade_id == 'test_normalize':\n"
           "        tensors = {**tensors, 'padding': torch.zeros(5_000_000)}\n"
           "    _write(outbox, grade_id, tensors, report)\n"
           "_h._write = _padded")

STUDENTS = {
    "honest": FULL_MARKS,
    # A cell of the student's own: restore_structure gives the released cells their ids back, not this one.
    "no-ids": without_cell_ids(with_cells(FULL_MARKS, "scratch = 1")),
    "display-flood": with_cells(FULL_MARKS, *DISPLAY_FLOOD),
    "math-bomb": with_cells(FULL_MARKS, *[MATH_BOMB] * 20, markdown=True),
    "padded": None,  # PADDING inserted before the first test cell: built below
    "deep": deep_notebook(),
    "bigint": big_integer_notebook(),
    "+1+1": BLANK,
    "-rf": BLANK,
    FORGER: BLANK,
    FORMULA: BLANK,
    NEWLINE: BLANK,
}
GRADED = ["honest", "no-ids", "display-flood", "math-bomb", "padded", "+1+1", "-rf"]
NOT_GRADED = ["deep", "bigint", FORGER, FORMULA, NEWLINE]


def padded_notebook() -> bytes:
    nb = nbformat.reads(FULL_MARKS.decode(), as_version=4)
    first_test = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_normalize")
    nb.cells.insert(first_test, nbformat.v4.new_code_cell(PADDING))
    return nbformat.writes(nb).encode()


class Batch:
    def __init__(self, root: Path):
        self.root = root
        hand_in(root, {f"{name}/{PUZZLE1}/puzzle1.ipynb": data if data is not None else padded_notebook()
                       for name, data in STUDENTS.items()})
        self.result = run_grade(root)
        self.lines = self.result.stdout.splitlines()
        roster = root.parent / f"{root.name}-roster.csv"
        roster.write_text(
            "Student,ID,SIS User ID,SIS Login ID,Section,Puzzle 1 (12345)\r\n"
            "    Points Possible,,,,,25.00\r\n"
            "Honest Student,1,S1,honest,A,\r\n"
            '"=cmd|\' /C calc\'!A0",2,S2,+1+1,A,\r\n'
            "Dash,3,S3,-rf,A,\r\n")
        self.canvas = subprocess.run([sys.executable, "-m", "interp_course", "--root", str(root), "canvas", "--roster",
                                      str(roster), "--assignment", PUZZLE1], env=nbgrader_env(), capture_output=True,
                                     text=True)

    def gradebook(self) -> dict[str, dict[str, float]]:
        with Gradebook(Course(self.root).db_url) as gb:
            return {s.id: {g.name: g.score for g in gb.find_submission_notebook("puzzle1", PUZZLE1, s.id).grades}
                    for s in gb.students}

    def csv(self, name: str) -> list[dict]:
        with open(self.root / name, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def batch(courses_dir) -> Batch:
    return Batch(released_course(courses_dir / "hostile-batch"))


def test_the_honest_student_and_every_gradable_attacker_are_graded(batch):
    assert batch.result.returncode == 3, batch.result.stdout[-3000:] + batch.result.stderr[-3000:]
    grades = batch.gradebook()
    assert sorted(grades) == sorted(GRADED)
    totals = {s: sum(cells.values()) for s, cells in grades.items()}
    assert totals["honest"] == AUTO_MAX  # as alone: every autograded cell in full
    assert grades["no-ids"] == grades["display-flood"] == grades["math-bomb"] == grades["honest"]
    assert totals["+1+1"] == totals["-rf"] == 0
    assert f"Autograded {len(GRADED)} of {len(STUDENTS)} submissions of puzzle1 in " in batch.result.stdout


def test_each_refused_student_has_a_not_graded_line_with_the_name_escaped(batch):
    lines = batch.lines[batch.lines.index(f"NOT GRADED: {len(NOT_GRADED)} submissions of puzzle1:") + 1:]
    by_student = {line.split(": ", 1)[0].strip(): line for line in lines if line.startswith("  ")}
    assert set(by_student) == {"deep", "bigint", ascii(FORGER), ascii(FORMULA), ascii(NEWLINE)}
    assert "is nested more than 64 levels deep" in by_student["deep"]
    assert "holds a number of 5,000 characters" in by_student["bigint"]
    assert "holds a line break" in by_student[ascii(NEWLINE)]
    assert "holds ','" in by_student[ascii(FORGER)] and "holds" in by_student[ascii(FORMULA)]
    for name in ("deep", "bigint"):  # their own file: the student is told
        assert "could not be graded" in (batch.root / "feedback" / name / PUZZLE1 / "puzzle1.html").read_text()
    assert sorted(p.name for p in (batch.root / "feedback").iterdir()) == sorted(["deep", "bigint", *GRADED])


def test_the_closing_table_lists_every_graded_student(batch):
    table = batch.lines[batch.lines.index(f"{PUZZLE1:<24}{'score':>8}{'max score':>11}") + 1:]
    shown = [line.split()[0] for line in table[:len(GRADED)]]
    assert shown == sorted(GRADED)


def test_every_csv_reads_back_the_gradebooks_numbers(batch):
    totals = {s: sum(cells.values()) for s, cells in batch.gradebook().items()}
    neutral = {("'" + s if s.startswith(FORMULA_START) else s): score for s, score in totals.items()}
    grades = batch.csv("grades.csv")
    assert {r["student_id"]: float(r["score"]) for r in grades} == neutral
    by_question = batch.csv("grades_by_question.csv")
    assert {r["student_id"]: float(r["score"]) for r in by_question} == neutral
    assert batch.canvas.returncode == 3, batch.canvas.stdout + batch.canvas.stderr  # not all graded are in the roster
    canvas = {r["SIS Login ID"]: r for r in batch.csv("canvas_grades.csv")}
    assert float(canvas["honest"]["Puzzle 1 (12345)"]) == totals["honest"]
    assert float(canvas["'+1+1"]["Puzzle 1 (12345)"]) == float(canvas["'-rf"]["Puzzle 1 (12345)"]) == 0.0
    assert canvas["'+1+1"]["Student"] == "'=cmd|' /C calc'!A0"
    for rows in (grades, by_question, list(canvas.values())):
        assert not [v for r in rows for v in r.values() if v.startswith(FORMULA_START)]
    assert not [r for r in grades if r["student_id"].startswith("mallory")]


def test_a_display_update_cannot_flood_the_notebook_or_its_feedback(batch):
    def size(student, path):
        return (batch.root / path.format(student=student)).stat().st_size

    for path in ("autograded/{student}/puzzle1/puzzle1.ipynb", "feedback/{student}/puzzle1/puzzle1.html"):
        assert size("display-flood", path) < size("honest", path) + 400_000, path
    page = (batch.root / "feedback/display-flood/puzzle1/puzzle1.html").read_text()
    assert "output truncated" in page


def test_a_padded_hand_in_costs_that_cell_and_is_not_kept(batch):
    grades = batch.gradebook()
    assert grades["padded"]["test_normalize"] == 0
    assert {k: v for k, v in grades["padded"].items() if k != "test_normalize"} == \
        {k: v for k, v in grades["honest"].items() if k != "test_normalize"}
    page = (batch.root / "feedback/padded/puzzle1/puzzle1.html").read_text()
    assert re.search(r"its tensors \(test_normalize.safetensors\) came to \d+ MiB, more than the 16 MiB", page)
    runs = [p for p in (batch.root / "gradebook" / "runs").iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)]
    assert max(sum(f.stat().st_size for f in run.iterdir()) for run in runs) < 16 * 2**20


def test_a_notebook_without_cell_ids_keeps_one_key(batch):
    """One kept run per distinct notebook (honest, no-ids, display-flood, math-bomb, padded, and
    the blank one of +1+1 and -rf): six. With a key that changed at every read, the judging pass
    ran no-ids again under a seventh (and every regrade would again)."""
    runs = [p for p in (batch.root / "gradebook" / "runs").iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)]
    assert len(runs) == 6, sorted(p.name[:12] for p in runs)


def test_a_math_bomb_gets_a_page_with_the_capped_math_and_the_rest_as_text(batch):
    """Its page renders MAX_FORMULAS formulas (the notebook's own come first), says once where the
    rest begins, and shows the rest as the TeX written: text, like the rest of the page."""
    pages = {s: batch.root / "feedback" / s / PUZZLE1 / "puzzle1.html" for s in ("honest", "math-bomb")}
    honest, bomb = (BeautifulSoup(page.read_text(), "html.parser") for page in pages.values())
    assert len(bomb.find_all("math")) == MAX_FORMULAS
    assert len(bomb.select("p.interp-math-note")) == 1
    assert bomb.get_text().count("$a_{c}$") == 20 * 5000 - (MAX_FORMULAS - len(honest.find_all("math")))
    # every formula as MathML made a 13 MB page
    assert pages["math-bomb"].stat().st_size < pages["honest"].stat().st_size + 2_000_000

