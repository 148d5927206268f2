"""The judging library an assignment's ``grader_tests/<a>/checks.py`` is written with."""

from interp_course.judging.check import Check, no_inputs
from interp_course.judging.compare import (Diagnosis, close, diagnose, judge_function, reference_result,
                                          value_item)
from interp_course.judging.handin_files import HandIn
from interp_course.judging.verdict import Item, Verdict

__all__ = ["Check", "Diagnosis", "HandIn", "Item", "Verdict", "close", "diagnose", "judge_function",
           "no_inputs", "reference_result", "value_item"]
