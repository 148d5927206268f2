"""Kept runs: the key covers what decides a run, the store round-trips, damaged entries are misses."""

from __future__ import annotations

import nbformat
import pytest
from traitlets.config import Config

from interp_course.grading import run_cache
from interp_course.judging.handin_files import RawHandIn
from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox


def notebook(code: str = "x = 1"):
    cell = nbformat.v4.new_code_cell(code)
    cell.id = "cell-1"  # nbformat draws a random id; a submission's ids are fixed
    return nbformat.v4.new_notebook(cells=[cell])


@pytest.fixture
def run(tmp_path):
    for name in ("inbox", "work"):
        (tmp_path / name).mkdir()
    (tmp_path / "inbox" / "test_a.json").write_text('{"n": 1}')
    return tmp_path


def key(run, nb=None, settings=None):
    return run_cache.run_key(nb or notebook(), run / "inbox", run / "work", [], settings or {})


def test_the_key_changes_with_each_input(run):
    first = key(run)
    assert key(run) == first
    assert key(run, notebook("x = 2")) != first
    assert key(run, settings={"Execute": {"timeout": 5}}) != first
    (run / "work" / "data.csv").write_text("1,2")
    with_file = key(run)
    assert with_file != first
    (run / "inbox" / "test_a.json").write_text('{"n": 2}')
    assert key(run) != with_file


def test_how_a_batch_runs_is_not_part_of_the_key():
    """The planning pass (maybe with reuse_runs off) and the judging pass must agree."""
    base = Config({"Execute": {"timeout": 60}})
    planning = Config({"Execute": {"timeout": 60}, "GradeInSandbox": {"reuse_runs": False, "rerun_faulted": True}})
    assert GradeInSandbox(config=planning).execution_settings() == GradeInSandbox(config=base).execution_settings()
    assert GradeInSandbox(config=Config({"Execute": {"timeout": 61}})).execution_settings() != \
        GradeInSandbox(config=base).execution_settings()


def test_a_kept_run_round_trips(tmp_path):
    cache = run_cache.RunCache(tmp_path / "runs")
    nb = notebook()
    hand_ins = {"test_a": RawHandIn(b"tensors", b"{}"), "test_b": RawHandIn(problem="nothing was handed in")}
    k = "a" * 64
    assert cache.load(k) is None and k not in cache
    cache.store(k, run_cache.entry_files(nb, hand_ins))
    loaded_nb, loaded = cache.load(k)
    assert loaded == hand_ins
    assert loaded_nb.cells[0].source == "x = 1"


def test_a_damaged_entry_is_run_again(tmp_path):
    cache = run_cache.RunCache(tmp_path)
    k = "b" * 64
    cache.store(k, run_cache.entry_files(notebook(), {"test_a": RawHandIn(b"t", b"{}")}))
    (tmp_path / k / "test_a.safetensors").unlink()
    assert cache.load(k) is None
    (tmp_path / k / "test_a.safetensors").symlink_to("/etc/passwd")
    assert cache.load(k) is None


@pytest.mark.parametrize("files", [
    {"notebook.ipynb": b"{}"},  # no hand-ins record
    {"notebook.ipynb": b"{}", "hand_ins.json": b"{}", "../escape": b""},
    {"notebook.ipynb": b"{}", "hand_ins.json": b"{}", "x.json": "not bytes"},
])
def test_a_result_of_the_wrong_shape_is_refused(tmp_path, files):
    with pytest.raises(ValueError):
        run_cache.RunCache(tmp_path).store("c" * 64, files)
    assert not any(tmp_path.iterdir()) or not (tmp_path / ("c" * 64)).exists()


def test_keys_are_hex_digests_only(tmp_path):
    with pytest.raises(ValueError):
        run_cache.RunCache(tmp_path).load("../../etc")


def test_each_kernel_gets_one_thread_and_the_count_is_part_of_the_key(tmp_path):
    """Workers = cores, so one thread per kernel; the same numbers on any machine and worker count."""
    grader = GradeInSandbox(config=Config())
    grader._handin_dir, grader._models, grader.nb = tmp_path, (), notebook()
    env = grader.create_kernel_manager().extra_env
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    two = GradeInSandbox(config=Config({"GradeInSandbox": {"kernel_threads": 2}}))
    assert two.execution_settings() != grader.execution_settings()


def test_run_folders_are_made_where_zygote_kernels_can_be_given_them():
    """Every kernel forks from a zygote: a grader's run folders go in its runs folder (a zygote
    kernel can be given nothing else)."""
    from interp_course.sandbox import zygote

    assert GradeInSandbox().run_parent() == zygote.runs_root()
    zygote.remove_runs_root()


