"""Feedback that shows each check's verdict but none of the grader's internals.

Stock nbgrader feedback shows the restored hidden-test source and any traceback through it.
Here the hidden-test region is cut from test cells (the verdict text written by the grader
stays), and any traceback left in a test cell is reduced to its last line.
"""

from __future__ import annotations

from nbgrader.preprocessors import ClearHiddenTests
from nbgrader.utils import is_grade, is_solution
from traitlets import List


class HideGraderInternals(ClearHiddenTests):
    display_data_priority = List().tag(config=True)  # as HideRubric's: no traitlets warning in the log

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if is_grade(cell) and not is_solution(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
