"""Set-up runs once (`make setup`); `make grade` and the other commands never set up, and refuse
with the fix until set-up has run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from interp_course import cli, models
from interp_course.exit_status import REFUSED

ROOT = Path(__file__).resolve().parents[2]


def test_grade_refuses_with_the_fix_when_set_up_has_not_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(models, "SETTINGS_FILE", tmp_path / "course_settings.json")
    monkeypatch.delenv(models.HF_HOME_OVERRIDE, raising=False)
    assert cli.main(["grade"]) == REFUSED
    err = capsys.readouterr().err
    assert "set-up has not run here" in err and "make setup" in err


def test_only_setup_demo_and_test_set_up():
    for target in ("grade", "collect", "release", "corpus", "formgrader", "canvas"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True).stdout
        assert "interp_course setup" not in dry and "apt-get" not in dry, (target, dry)
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True).stdout
        assert "interp_course setup" in dry, (target, dry)


def test_make_help_lists_each_target_in_one_line():
    shown = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    targets = {line.split()[1] for line in shown.splitlines() if line.startswith("make ")}
    declared = set(subprocess.run(["make", "-qp"], cwd=ROOT, capture_output=True, text=True).stdout
                   .split(".PHONY: ", 1)[1].splitlines()[0].split())
    assert declared <= targets, declared - targets
