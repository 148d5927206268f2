"""The judging library an assignment's ``grader_tests/<a>/checks.py`` is written with.

The names that need torch (``compare``) are imported on first use: a grading worker reads
hand-in files through this package without judging, and need not import torch for that.
"""

from interp_course.judging.check import Check, no_inputs
from interp_course.judging.handin_files import HandIn
from interp_course.judging.verdict import Item, Verdict

_FROM_COMPARE = ("Diagnosis", "close", "diagnose", "how_far", "judge_function", "reference_result", "value_item")

__all__ = ["Check", "Diagnosis", "HandIn", "Item", "Verdict", "close", "diagnose", "how_far",
           "judge_function", "no_inputs", "reference_result", "value_item"]


def __getattr__(name: str):
    if name in _FROM_COMPARE:
        from interp_course.judging import compare

        return getattr(compare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
