"""``python -m interp_course.nbgrader_cli ARGS``: nbgrader's own command line, started faster.

jsonschema imports ``rfc3987_syntax`` when it is installed (jupyter-events pulls it in) to
check the "iri" string formats, and that import compiles ~40 grammars: 1-3 s of every nbgrader
command, three commands per grading run. No schema nbgrader or nbformat validates uses those
formats, so this entry point leaves the module out; everything else is ``nbgrader`` itself
(same apps, config files and guard).
"""

import sys

if __name__ == "__main__":
    sys.modules.setdefault("rfc3987_syntax", None)  # `import` then raises ImportError: jsonschema skips it
    from nbgrader.apps.nbgraderapp import main

    main()
