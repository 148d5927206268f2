"""``python -m interp_course.nbgrader_cli ARGS``: nbgrader's own command line, started faster.

Everything is ``nbgrader`` itself (same apps, config files and guard) except what
``interp_course.lean_imports`` leaves out: 1-3 s of start-up for each of the three nbgrader
commands of a grading run.
"""

if __name__ == "__main__":
    from interp_course.lean_imports import skip_iri_grammars

    skip_iri_grammars()
    from nbgrader.apps.nbgraderapp import main

    main()
