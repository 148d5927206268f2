"""A hidden check: the inputs one graded test cell's hand-in is run on, and its judge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from interp_course.judging.handin_files import HandIn
from interp_course.judging.verdict import Item, Verdict


@dataclass(frozen=True)
class Check:
    """One per graded test cell, keyed by the cell's ``grade_id`` and worth its points.

    ``inputs(context)`` returns ``{"<function>/<case>": args}`` (args: one tensor, or a tuple of
    tensors and JSON values) for the functions the cell hands in; ``judge(inputs, handed,
    context)`` returns the itemised points. ``context`` maps each model id the assignment
    declares to its ``W_E``. Both run in the grader, never in the student's kernel.
    """

    grade_id: str
    points: float
    inputs: Callable[[dict], dict]
    judge: Callable[[dict, HandIn, dict], list[Item]]

    def verdict(self, inputs: dict, handed: HandIn, context: dict) -> Verdict:
        items = self.judge(inputs, handed, context)
        total = sum(item.max_points for item in items)
        assert abs(total - self.points) < 1e-9, f"{self.grade_id}: items add up to {total}, not {self.points}"
        return Verdict(self.grade_id, items)


def no_inputs(context: dict) -> dict:
    """For checks that judge values the student computed (the grader computes the reference)."""
    return {}
