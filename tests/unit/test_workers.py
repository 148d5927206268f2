"""What the workers print: one line per faulted run, naming the students it was for."""

from __future__ import annotations

import nbformat

from interp_course import run_cache, workers
from interp_course.judging.handin_files import RawHandIn


def result_with(*outputs):
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = list(outputs)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])
    return run_cache.entry_files(nb, {"test_a": RawHandIn(problem="nothing was handed in")})


def test_kernel_faults_are_named_with_their_cell():
    died = nbformat.v4.new_output("error", ename="KernelDied", evalue="exit 1", traceback=[])
    plain = nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])
    assert workers.faults(result_with(died, plain)) == ["KernelDied in cell 1"]
    assert workers.faults(result_with(plain)) == []


def test_a_faulted_run_is_reported_once_for_every_student_who_shares_it(tmp_path, capsys):
    key = "d" * 64
    (tmp_path / ".planned").mkdir()
    for student in ("bob", "alice"):
        (tmp_path / ".planned" / student).write_text(key)
    timeout = nbformat.v4.new_output("error", ename="CellTimeout", evalue="60 s", traceback=[])
    workers._report_faults(tmp_path, key, result_with(timeout))
    assert capsys.readouterr().out == "  alice, bob: CellTimeout in cell 1\n"


def test_a_workers_warnings_reach_the_grader_as_marked_log_lines(capfd):
    """Outside an nbgrader app, traitlets drops every log record; a worker must not lose the
    sandbox's warnings (e.g. no cgroup limits), nor print a student's output on the terminal."""
    import logging

    from traitlets.config import LoggingConfigurable

    logger = logging.getLogger("traitlets")
    handlers, level = list(logger.handlers), logger.level
    try:
        workers.log_warnings()
        workers.log_warnings()  # one handler, however many runs a worker does
        LoggingConfigurable().log.warning("Kernel output before it died:\n%s", "student text\nmore")
        LoggingConfigurable().log.info("not shown")
    finally:
        logger.handlers[:], logger.level = handlers, level
    assert capfd.readouterr().err.splitlines() == [
        "[worker] WARNING Kernel output before it died:", "[worker] student text", "[worker] more"]
