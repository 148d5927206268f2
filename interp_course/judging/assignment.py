"""An assignment's checks and the context they need, loaded from ``grader_tests/<a>/checks.py``.

That module is content only. It defines::

    CHECKS = [Check("test_foo", 2.0, inputs_fn, judge_fn), ...]   # one per graded test cell
    MODELS = ("<org>/<model>", ...)                                  # optional: W_E it needs

The grader loads it once per process; the models it declares, and the inputs of every check,
are computed once and shared by every submission of a batch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from interp_course.course import Course
from interp_course.judging.check import Check


@dataclass
class Assignment:
    name: str
    checks: dict[str, Check]
    models: tuple[str, ...] = ()
    _context: dict | None = field(default=None, repr=False)
    _inputs: dict = field(default_factory=dict, repr=False)

    def context(self) -> dict:
        """W_E of each declared model, by model id (empty for an assignment without models)."""
        if self._context is None:
            from interp_course.models import load_embeddings

            self._context = load_embeddings(self.models)
        return self._context

    def inputs(self, grade_id: str) -> dict:
        """The check's inputs, made once (they are the same for every student)."""
        if grade_id not in self._inputs:
            self._inputs[grade_id] = self.checks[grade_id].inputs(self.context())
        return self._inputs[grade_id]


@lru_cache(maxsize=None)
def _load(root: Path, name: str) -> Assignment:
    Course(root).make_importable()
    module = importlib.import_module(f"grader_tests.{name}.checks")
    checks = {check.grade_id: check for check in module.CHECKS}
    if len(checks) != len(module.CHECKS):
        raise ValueError(f"grader_tests/{name}/checks.py: two checks share a grade_id")
    return Assignment(name, checks, tuple(getattr(module, "MODELS", ())))


def load_assignment(course: Course, name: str) -> Assignment:
    return _load(course.root, name)
