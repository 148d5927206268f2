import sys

from interp_course.patches.lean_imports import skip_iri_grammars

skip_iri_grammars()  # before cli imports nbformat and nbgrader

from interp_course.cli import main  # noqa: E402

sys.exit(main())
