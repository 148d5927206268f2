"""What the Puzzle 1 notebook promises a student, checked on the committed source and release:
its length, an opening that gives nothing away, points that add up, discovery before any reveal,
rubrics with an example at every score, the right history, and a requirements file beside it."""

from __future__ import annotations

import re
import tomllib

import nbformat
import pytest

from interp_course.course import CHECKOUT, Course
from interp_course.preprocessors.rubric import rubrics

COURSE = Course(CHECKOUT)
SOURCE = nbformat.read(COURSE.source("puzzle1") / "puzzle1.ipynb", as_version=4)
RELEASE = nbformat.read(COURSE.release("puzzle1") / "puzzle1.ipynb", as_version=4)
# The later functions' names and the words of the answer: none may appear in the opening cell.
GIVEAWAYS = ["mean vector", "mean embedding", "centr", "center", "origin", "offset", "shared", "zero point",
             "cosine_sim_with_mean", "mean_pairwise_cosine_sim", "diagnostic_fn", "bias", "positional"]


def gid(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def words(text: str) -> int:
    return len(text.split())


def prose(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "markdown"]


def test_the_release_is_short_and_its_opening_gives_nothing_away():
    assert sum(words(c.source) for c in prose(RELEASE)) <= 2500
    opening = RELEASE.cells[0].source
    assert words(opening) <= 250
    assert [w for w in GIVEAWAYS if w in opening.lower()] == []


def test_the_opening_table_has_each_parts_points():
    table = {int(m[1]): (float(m[2] or 0), float(m[3] or 0)) for m in re.finditer(
        r"^\| (\d) [^|]*\| (?:([\d.]+) autograded)?(?:, )?(?:([\d.]+) by hand)? \|", SOURCE.cells[0].source, re.M)}
    parts: dict[int, list[float]] = {}
    part = None
    for cell in SOURCE.cells:
        heading = re.match(r"## Part (\d)", cell.source) if cell.cell_type == "markdown" else None
        if heading:
            part = int(heading[1])
            parts[part] = [0.0, 0.0]
        elif cell.cell_type == "markdown" and cell.source.startswith("## "):
            part = None
        meta = cell.metadata["nbgrader"]
        if meta.get("grade") and part is not None:
            parts[part][cell.cell_type == "markdown"] += float(meta["points"])
    assert table == {p: tuple(points) for p, points in parts.items()}
    assert sum(map(sum, table.values())) == 25
    assert "**25**" in SOURCE.cells[0].source


def test_every_exercise_says_difficulty_and_importance_in_words():
    difficulty = {1: "easy", 2: "moderate", 3: "hard"}
    importance = {2: "low", 3: "medium", 4: "high", 5: "essential"}
    seen = 0
    for cell in prose(RELEASE):
        for line in cell.source.splitlines():
            if "🔴" in line or "🔵" in line:
                said = re.search(r"\*\*Difficulty\*\* ([🔴⚪]{5}) ([a-z]+) · \*\*Importance\*\* ([🔵⚪]{5}) ([a-z]+) ·", line)
                assert said, line
                assert said[2] == difficulty[said[1].count("🔴")] and said[4] == importance[said[3].count("🔵")], line
                seen += 1
    assert seen == 15  # every exercise


def test_the_part_2_test_is_run_and_recorded_before_anything_names_an_explanation():
    ids = [gid(c) for c in RELEASE.cells]
    before = RELEASE.cells[:ids.index("test_result") + 1]
    named = [w for c in before if c.cell_type == "markdown" for w in GIVEAWAYS + ["average embedding", "candidate"]
             if w in c.source.lower()]
    assert named == []
    assert ids.index("hypothesis") < ids.index("my_test") < ids.index("test_result") < ids.index("part3_md")


def test_every_rubric_has_an_example_at_every_total_it_names():
    for grade_id, (points, text) in rubrics(COURSE.source("puzzle1") / "puzzle1.ipynb").items():
        examples = text.split("**Examples.**")[1]
        totals = {float(m) for m in re.findall(rf"^- ([\d.]+)/{points:g}\b", examples, re.M)}
        assert {0.0, points} <= totals, grade_id
        named = {float(m) for m in re.findall(rf"\b([\d.]+)/{points:g}\b", text)}
        assert named <= totals, (grade_id, named - totals)


def test_the_history_is_the_posts():
    texts = [c.source for c in SOURCE.cells] + [(CHECKOUT / "grader_tests/puzzle1/verify_real.py").read_text()]
    assert not any("TransformerLens 3" in t for t in texts)
    whole = "\n".join(c.source for c in RELEASE.cells)
    assert "HookedTransformer" in whole and "TransformerLens 1.x/2.x" in whole
    assert "Both GPT-Neo-125M\nand GPT-2 small tie" in whole or "Both GPT-Neo-125M and GPT-2 small tie" in whole


@pytest.mark.parametrize("folder", [COURSE.source("puzzle1"), COURSE.release("puzzle1")])
def test_a_requirements_file_with_the_courses_pins_sits_beside_the_notebook(folder):
    pins = dict(line.split("==") for line in (folder / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["dependencies"]
    course = dict(dep.split("  #")[0].strip().split("==") for dep in project)
    assert {"torch", "transformer-lens", "plotly", "numpy"} <= set(pins)
    assert all(course[name] == version for name, version in pins.items()), pins
