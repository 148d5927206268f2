"""The submissions that prove the grader right, and the builder that writes them as notebooks.

Every submission is the released notebook with some cells answered, described here once:
``answers`` maps a solution cell's grade_id to the source a student wrote for it (cells not
named keep the reference answer, or the release stub when ``base="blank"``); ``expected`` maps
each test cell whose score differs from the base to its points; ``feedback`` lists phrases the
student's feedback must contain. ``python -m grader_tests.corpus`` writes
``grader_tests/submissions/<name>.ipynb``; a test fails when those files are stale.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "puzzle1" / "puzzle1.ipynb"
RELEASE = ROOT / "release" / "puzzle1" / "puzzle1.ipynb"
OUT = Path(__file__).resolve().parent / "submissions"

GOOD_EXPLANATION = """\
GPT-Neo's token embeddings are not spread around the origin: they all share one big mean vector.
Its norm is about as large as a typical token's (mean_to_token_norm ≈ 1) and most tokens have a
cosine of ≈ 0.95 with it, so every pair of tokens looks aligned. Cosine similarity and dot products
measure angles from the zero point, and zero is not a meaningful point for these embeddings. After
subtracting the mean embedding the mean pairwise cosine drops to ≈ 0. Lesson: choose the origin
deliberately — I would mean-centre embeddings (or activations) before comparing directions, and
be equally wary of zero ablations."""


@dataclass
class Submission:
    name: str
    about: str
    answers: dict[str, str] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    feedback: list[str] = field(default_factory=list)
    base: str = "reference"  # or "blank": the release notebook untouched
    edit: Callable | None = None  # structural change to the notebook (cheats and faults)
    group: str = "mistake"  # demo | mistake | correct | cheat | fault


def _solution_body(source: str) -> str:
    """A source solution cell with its BEGIN/END SOLUTION markers removed."""
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def reference_answers() -> dict[str, str]:
    nb = nbformat.read(SOURCE, as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = _solution_body(cell.source)
    answers["explanation"] = GOOD_EXPLANATION
    return answers


def build(submission: Submission, release, reference: dict[str, str]):
    nb = copy.deepcopy(release)
    answers = {} if submission.base == "blank" else dict(reference)
    answers.update(submission.answers)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source = answers[gid]
    if submission.edit:
        submission.edit(nb)
    return nb


def fn(name: str, body: str, args: str = "W: torch.Tensor") -> str:
    """A student's function cell: ``def name(args):`` with an indented body."""
    body = "\n".join("    " + line if line else "" for line in body.strip("\n").splitlines())
    return f"def {name}({args}) -> torch.Tensor:\n{body}\n"


SUBMISSIONS: list[Submission] = []


def add(*subs: Submission) -> None:
    SUBMISSIONS.extend(subs)


# --- the demo's four students ------------------------------------------------------------------
add(
    Submission("full-marks", "the reference answers, with a good explanation", group="demo"),
    Submission("blank", "the release notebook, untouched", base="blank", group="demo",
               expected={"*": 0.0}, feedback=["nothing was handed in"]),
    Submission(
        "partial-nan-and-layernorm",
        "normalize divides by a zero norm (NaN rows) and center subtracts each token's own mean",
        answers={
            "normalize": fn("normalize", "return W / W.norm(dim=-1, keepdim=True)"),
            "center": fn("center", "return W - W.mean(dim=-1, keepdim=True)"),
        },
        expected={"test_normalize": 1.5, "test_center": 0.5, "test_evidence": 1.5},
        feedback=["a zero row gave NaN", "LayerNorm"],
        group="demo",
    ),
    Submission(
        "partial-no-bonus",
        "Parts 1–3 right but the bonus left undone and the wrong multiple-choice answer",
        answers={"cause": 'cause = "A"',
                 "mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim", "raise NotImplementedError()"),
                 "bonus_evidence": "raise NotImplementedError()"},
        expected={"test_cause": 0.0, "test_mean_pairwise_cosine_sim": 0.0, "test_bonus_evidence": 0.0},
        feedback=["not that one", "NotImplementedError"],
        group="demo",
    ),
)


def write_all() -> list[Path]:
    release = nbformat.read(RELEASE, as_version=4)
    reference = reference_answers()
    OUT.mkdir(exist_ok=True)
    written = []
    for submission in SUBMISSIONS:
        nb = build(submission, release, reference)
        path = OUT / f"{submission.name}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path.relative_to(ROOT))
