"""What the grader's own processes, and the kernel zygote, leave out when they start.

jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter-events pulls it in) to check
the "iri" string formats, and that import compiles ~40 grammars: 1-3 s for every process that
imports nbformat or nbgrader, and a grading run starts several. No schema nbgrader or nbformat
validates uses those formats (``tests/unit/test_lean_imports.py``), so these processes go
without: ``import rfc3987_syntax`` raises ImportError, which jsonschema skips.

The zygote (``zygote.serve``) goes without too: it imports nbformat for plotly's renderers, and
its kernels inherit the gap. A student's ``jsonschema.FormatChecker`` there leaves "iri" strings
unchecked, as on any machine without that optional package.
"""

import sys


def skip_iri_grammars() -> None:
    """Call before anything imports jsonschema (nbformat, nbgrader)."""
    sys.modules.setdefault("rfc3987_syntax", None)
