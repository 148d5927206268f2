"""The figure sandbox on its own: it draws, and its time limit stops it with nothing left behind.

Run as the grading account (as grading does when these tests run as root): the sandbox's uid maps
to the account that starts it, and figures are never drawn as root.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import grader_tmp
from interp_course.security import grader_user
from interp_course.course import CHECKOUT
from test_inert_browser import needs_chromium

DRAW = """
import json, logging, sys, tempfile, time
from interp_course.sandbox import figures
from interp_course.sandbox.kernel_manager import SandboxedKernelManager
timeout, figs = float(sys.argv[1]), json.loads(sys.stdin.read())
sandboxed, in_sandbox = [], figures._draw_in_sandbox  # how many figures each sandbox was given
figures._draw_in_sandbox = lambda texts, *a, **k: sandboxed.append(len(texts)) or in_sandbox(texts, *a, **k)
def draw():
    return figures.draw(figs, SandboxedKernelManager(), width=320, height=200, scale=2, font_size=16, timeout=timeout,
                        memory_mb=2048, max_png_bytes=300_000, chromium="/usr/lib/chromium/chromium",
                        log=logging.getLogger())
start = time.monotonic()
pngs = draw()
seconds = time.monotonic() - start
print(json.dumps({"tmp": tempfile.gettempdir(), "seconds": seconds, "sizes": [len(p) if p else None for p in pngs],
                  "first": pngs[0][:8].hex() if pngs[0] else None, "again_same": draw() == pngs, "sandboxed": sandboxed}))
"""
FIGURE = {"data": [{"type": "bar", "x": [1, 2, 3], "y": [3, 1, 2]}], "layout": {"title": {"text": "bars"}}}


@pytest.fixture
def tmp(courses_dir, request):
    """The grading account's TMPDIR, where the figures' run folder is made (and must not stay)."""
    return grader_tmp(courses_dir / request.node.name)


def draw(figs: list, timeout: float, tmp) -> dict:
    argv, env = [sys.executable, "-c", DRAW, str(timeout)], {"TMPDIR": str(tmp), "PYTHONPATH": str(CHECKOUT)}
    if grader_user.is_root():
        argv, env = grader_user.command(argv), grader_user.environment(env)
    done = subprocess.run(argv, input=json.dumps(figs), capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["tmp"] == str(tmp)
    return found


def figure_processes() -> str:
    return subprocess.run(["pgrep", "-af", "figure_worker|chromium --.*kaleido|interp-course-figures"],
                          capture_output=True, text=True).stdout


@needs_chromium
def test_figures_are_drawn_as_pngs(tmp):
    found = draw([FIGURE, "not a figure", FIGURE], 120, tmp)
    assert found["first"] == "89504e470d0a1a0a"  # the PNG signature
    assert found["sizes"][0] and found["sizes"][2] and found["sizes"][1] is None
    assert list(tmp.iterdir()) == []  # the run folder is gone
    # Drawn again in the same process: the same images, and only what failed goes to a sandbox again.
    assert found["again_same"] and found["sandboxed"] == [3, 1]


@needs_chromium
@pytest.mark.alone  # no figure process may be left on the machine: none of another test's either
def test_the_time_limit_stops_the_sandbox_and_nothing_is_left(tmp):
    found = draw([FIGURE] * 5, 1.0, tmp)
    assert found["sizes"] == [None] * 5 and found["seconds"] < 10
    assert found["sandboxed"] == [5, 5]  # nothing drawn, nothing kept: tried again in full
    assert figure_processes() == "" and list(tmp.iterdir()) == []
