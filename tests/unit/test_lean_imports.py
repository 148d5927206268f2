"""`python -m interp_course.grading.nbgrader_cli` is nbgrader, without the IRI grammars (`interp_course.patches.lean_imports`)."""

from __future__ import annotations

import subprocess
import sys

from interp_course.cli import nbgrader_env


def test_it_is_nbgrader_and_leaves_out_only_the_iri_grammars():
    code = ("import runpy, sys; sys.argv = ['nbgrader', '--version']\n"
            "try:\n    runpy.run_module('interp_course.grading.nbgrader_cli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "import jsonschema, nbgrader, nbformat\n"
            "print('iri' in jsonschema.FormatChecker.checkers, 'uri' in jsonschema.FormatChecker.checkers)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=nbgrader_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    version, formats = done.stdout.strip().splitlines()[-2:]
    import nbgrader

    assert version == f"nbgrader version {nbgrader.__version__}"
    assert formats == "False True"  # nbformat's and nbgrader's schemas use neither IRI format
