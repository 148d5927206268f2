"""``python -m interp_course.grading.nbgrader_cli [--when-told] ARGS``: nbgrader's own command line, started faster.

Everything is ``nbgrader`` itself (same apps, config files and guard) except what
``interp_course.patches.lean_imports`` leaves out (1-3 s of start-up for each nbgrader command of
a grading run), that its gradebook openings share one SQLAlchemy engine
(``interp_course.patches.gradebook_engine``: ~40 ms less for each notebook autograded), and that
``autograde`` is nbgrader's autograde app with the batch's kernels run side by side
(``interp_course.grading.autograde``).

``--when-told``: import the libraries the command will use (``PRELOAD``: nbgrader's apps, and
torch for autograde; ~1-3 s), then wait for one line on stdin. ``go`` runs the command, ``go``
followed by a JSON list of strings runs it with those arguments added (the ones known only then,
such as a batch's folders); anything else, or the end of stdin, exits 0 having done nothing else.
Until ``go`` no course file is read (not even the config) and no submission is touched, so the
grader starts the next command this way while the one before it runs
(``interp_course.grading.nbgrader_process``).
"""

import importlib
import json
import sys

# Library imports only: the course's own files are loaded by nbgrader after "go".
PRELOAD = {
    "autograde": ["interp_course.grading.autograde", "IPython.lib.lexers", "torch", "safetensors.torch",
                  "interp_course.preprocessors.grade_in_sandbox"],
    "generate_feedback": ["nbgrader.apps.nbgraderapp", "IPython.lib.lexers", "bs4", "latex2mathml.converter"],
}
DEFAULT_PRELOAD = ["nbgrader.apps.nbgraderapp"]


if __name__ == "__main__":
    from interp_course.patches.lean_imports import skip_iri_grammars

    skip_iri_grammars()
    if sys.argv[1:2] == ["--when-told"]:
        del sys.argv[1]
        for name in PRELOAD.get(sys.argv[1] if len(sys.argv) > 1 else "", DEFAULT_PRELOAD):
            importlib.import_module(name)
        word, _, more = sys.stdin.readline().strip().partition(" ")
        if word != "go":
            sys.exit(0)
        if more:
            added = json.loads(more)
            if not (isinstance(added, list) and all(isinstance(a, str) for a in added)):
                sys.exit("nbgrader_cli: 'go' takes a JSON list of strings")
            sys.argv += added
    from interp_course.patches.gradebook_engine import share_engines

    share_engines()
    if sys.argv[1:2] == ["autograde"]:
        from interp_course.grading.autograde import main

        main(sys.argv[2:])
    else:
        from nbgrader.apps.nbgraderapp import main

        main()
