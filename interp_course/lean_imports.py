"""What the grader's own processes leave out when they start.

jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter-events pulls it in) to check
the "iri" string formats, and that import compiles ~40 grammars: 1-3 s for every process that
imports nbformat or nbgrader, and a grading run starts several. No schema nbgrader or nbformat
validates uses those formats (``tests/unit/test_lean_imports.py``), so these processes go
without: ``import rfc3987_syntax`` raises ImportError, which jsonschema skips.
"""

import sys


def skip_iri_grammars() -> None:
    """Call before anything imports jsonschema (nbformat, nbgrader)."""
    sys.modules.setdefault("rfc3987_syntax", None)
