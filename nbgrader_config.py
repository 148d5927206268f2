"""nbgrader configuration for the course. Plain `nbgrader autograde` takes the safe path.

Run nbgrader from this folder with the course venv active (`. .venv/bin/activate`). The course
layout (root, course id, folders) is defined in `interp_course/course.py`; each assignment's
checks live in `grader_tests/<assignment>/checks.py`.
"""

import logging
import os
import warnings
from pathlib import Path

from interp_course.course import COURSE_ID, Course
from interp_course.models import apply_model_env

course = Course(Path(__file__).resolve().parent)
course.gradebook.parent.mkdir(exist_ok=True)  # SQLite creates the file, not its folder

# Set the model source chosen at set-up before anything imports huggingface_hub.
apply_model_env()
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the grader loads W_E itself
os.environ.setdefault("TQDM_DISABLE", "1")

from sqlalchemy.exc import SAWarning  # noqa: E402
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from interp_course.patches.check_cell_metadata import CheckCellMetadataOnce  # noqa: E402
from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox  # noqa: E402
from interp_course.preprocessors.feedback_page import FeedbackExporter, FeedbackPage  # noqa: E402
from interp_course.preprocessors.hide_grader_internals import HideGraderInternals  # noqa: E402
from interp_course.preprocessors.restore_structure import RestoreStructure  # noqa: E402
from interp_course.preprocessors.rubric import HideRubric, ShowRubric  # noqa: E402
from interp_course.preprocessors.sanitize_submission import SanitizeSubmission, clean_html  # noqa: E402
from interp_course.security.inert import TerminalSafeFilter  # noqa: E402


class _BenignChecksumWarning(logging.Filter):
    """Test cells' checksums always differ once hidden tests are restored (nbgrader #1961)."""

    def filter(self, record):
        return not record.getMessage().startswith("Attribute 'checksum' for cell test_")


logging.getLogger("AutogradeApp").addFilter(_BenignChecksumWarning())
# nbgrader's gradebook code triggers SQLAlchemy's autoflush warnings on every new student: noise.
warnings.filterwarnings("ignore", category=SAWarning)
# Kernel-derived text (kernel log tails, message types, exception messages) may reach this log.
logging.getLogger("AutogradeApp").addFilter(TerminalSafeFilter())

c = get_config()  # noqa: F821 - provided by traitlets when this file is loaded

c.CourseDirectory.root = str(course.root)
c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.db_url = course.db_url
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Loading two models and running every cell takes seconds; a runaway cell is stopped after this.
c.Execute.timeout = 120
# Each sandbox's cgroup (memory and process caps) is made in the parent `make setup` gave the
# grading account. Without one, grading refuses (exit 2) before anyone is judged, unless the
# instructor says `make grade ALLOW_NO_CGROUP=1`: kernels then get per-process limits only, and
# the closing lines say so.
c.SandboxedKernelManager.cgroup_parent = "/interp-course"
c.SandboxedKernelManager.require_cgroup = os.environ.get("ALLOW_NO_CGROUP") != "1"
# Each kernel is forked from a zygote that has imported these (libraries only, never course
# material): what the notebooks' first cell imports, ~6 s per kernel otherwise; what plotly
# imports when the first figure is shown (its renderers and nbformat, ~1.5 s per kernel); and what
# making the first figure and booting GPT-Neo and GPT-2 import (plotly's figure classes, by
# interp_course.plotly_preload; the models' classes and tokenizers: ~0.13 s per kernel together).
c.SandboxedKernelManager.zygote_preload = [
    "torch", "transformer_lens", "transformer_lens.model_bridge", "plotly.express", "plotly.io._renderers", "nbformat",
    "interp_course.plotly_preload",
    "transformer_lens.model_bridge.sources.transformers_driver", "transformer_lens.utilities.architectures",
    "transformers.models.gpt_neo.modeling_gpt_neo", "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.gpt2.tokenization_gpt2", "transformers.generation.utils", "psutil",
]

c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    RestoreStructure,  # deleted/duplicated/re-typed cells and edited metadata are undone
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadataOnce,  # nbgrader's check, the schema compiled once per process
]
c.Autograde.autograde_preprocessors = [
    GradeInSandbox,  # instead of nbgrader's Execute: sandboxed kernel, verdict decided here
    SanitizeSubmission,  # outputs and markdown made inert before the notebook is stored
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    ShowRubric,  # each hand-graded answer's rubric, for the TA in formgrader (not a grade cell)
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadataOnce,
]
# FeedbackPage last: the points per part on top, math as MathML, wrapped output, alt text on images
# (readable offline, and by a screen reader).
c.GenerateFeedback.preprocessors = [HideRubric, HideGraderInternals, GetGrades, CSSHTMLHeaderPreprocessor, FeedbackPage]
c.GenerateFeedback.exporter_class = FeedbackExporter  # FeedbackPage's alt text: no second parse of each page
# Plain `nbgrader export` too writes grades.csv quoted, with formula-like cells neutralised.
c.ExportApp.plugin_class = "interp_course.lms.grades_csv.GradesCsv"
# Feedback pages and formgrader (whose HTMLExporter reads this file) sanitize again as they render,
# which also covers notebooks autograded before SanitizeSubmission; clean_html gets its allowlist.
c.HTMLExporter.preprocessors = [SanitizeSubmission]
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": clean_html}
# nbconvert validates the whole notebook after each of the ~15 preprocessors by default; once,
# after the last, finds the same invalid notebook (the error names no preprocessor).
c.Exporter.optimistic_validation = True
