"""interp_course.patches.gradebook_engine: nbgrader's gradebook openings share one engine per database."""

from __future__ import annotations

import shutil

import nbgrader.api
import pytest
from nbgrader.api import Gradebook

from interp_course.patches import gradebook_engine
from interp_course.grading.nbgrader_process import nbgrader_env


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory):
    # nbgrader runs alembic (from PATH, ~2 s) to make a new gradebook: once, then copies
    path = tmp_path_factory.mktemp("gradebook") / "empty.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", nbgrader_env()["PATH"])
        with Gradebook(f"sqlite:///{path}"):
            pass
    return path


@pytest.fixture
def two_gradebooks(empty_gradebook, tmp_path, monkeypatch):
    for name in ("one.db", "two.db"):
        shutil.copy(empty_gradebook, tmp_path / name)
    monkeypatch.setattr(nbgrader.api, "create_engine", nbgrader.api.create_engine)  # put back afterwards
    monkeypatch.setattr(gradebook_engine, "_engines", {})
    return [f"sqlite:///{tmp_path / name}" for name in ("one.db", "two.db")]


def test_each_opening_of_a_gradebook_takes_the_engine_made_for_its_database(two_gradebooks):
    one, two = two_gradebooks
    gradebook_engine.share_engines()
    with Gradebook(one) as first:
        first.add_student("alice")
        engine = first.engine
    with Gradebook(one) as second:  # opened again after close(): the same engine, the row is there
        assert second.engine is engine and [s.id for s in second.students] == ["alice"]
    with Gradebook(one) as a, Gradebook(two) as b:  # another database: its own engine
        assert a.engine is engine and b.engine is not engine and b.students == []


def test_stock_nbgrader_makes_an_engine_per_opening(two_gradebooks):  # what share_engines changes
    one, _ = two_gradebooks
    with Gradebook(one) as first, Gradebook(one) as second:
        assert first.engine is not second.engine
