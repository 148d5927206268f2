"""The grading log: every line to the file; a sandbox weaker than configured also to the terminal."""

from __future__ import annotations

from interp_course.grading import log as grading_log


def test_a_weaker_sandbox_becomes_one_notice_however_often_it_is_logged(tmp_path):
    with grading_log.logging_to(tmp_path / "logs") as log:
        for _ in range(3):  # each worker process says it once
            log.write("[worker] WARNING Sandbox cgroup limits are NOT enforced (no cgroup v1 memory "
                      "hierarchy at /sys/fs/cgroup/memory). The total memory ...")
        log.write("[AutogradeApp | WARNING] Removing existing assignment: autograded/alice/puzzle1")
    assert len(log.notices) == 1 and "WITHOUT cgroup limits" in log.notices[0]
    assert "make setup" in log.notices[0]
    assert len(log.path.read_text().splitlines()) == 4


def test_an_ordinary_run_has_no_notice(tmp_path):
    with grading_log.logging_to(tmp_path / "logs") as log:
        log.write("[GenerateFeedbackApp | WARNING] Alternative text is missing on 8 image(s).")
        log.write("  [########################] 4/4  11.6 s/notebook  ETA 0:00")
    assert log.notices == []
