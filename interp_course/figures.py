"""Student figures as static PNGs, drawn in a sandbox of their own.

The grading kernel shows plotly figures as their JSON (``application/vnd.plotly.v1+json``): data,
not a script. After the notebook has run, the grader hands those figures to
``interp_course.figure_worker``, which draws them with kaleido in headless Chromium inside a
bubblewrap sandbox like the kernel's: no network, the grading account's uid mapped to nobody, no
capabilities, its own cgroup (memory and processes), a wall-clock limit for all the figures of a
notebook together, and nothing of the course but the figures it is given. The grader then reads
back only regular files (``O_NOFOLLOW``, bounded reads) that are well-formed PNGs.

Why not draw in the kernel itself: Chromium reserves terabytes of address space (V8's sandbox),
which the kernel's per-process address-space limit (``memory_limit_mb``) forbids, and the kernel
would then run a browser beside the student's code for the whole notebook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from interp_course import workdir
from interp_course.cgroups import CgroupUnavailable, open_parent
from interp_course.images import png_size
from interp_course.inert import terminal_safe
from interp_course.untrusted_files import UnsafeFile, read_regular_file
from interp_course.sandbox import SandboxedKernelManager

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PACKAGE_DIR = Path(__file__).resolve().parent
_MB = 1024 * 1024


def sandbox_command(manager: SandboxedKernelManager, run: Path, width: int, height: int, chromium: str) -> list[str]:
    """The worker's command line: ``manager``'s sandbox, with the figures read-only and only
    the output folder writable."""
    manager.memory_limit_mb = 0  # Chromium reserves address space it never uses; the cgroup caps memory
    manager.readonly_paths = [str(PACKAGE_DIR), str(run / "in")]
    manager.writable_paths = [str(run / "out")]
    manager.extra_env = {
        "PYTHONPATH": str(PACKAGE_DIR.parent),  # only the package is bound from there
        "BROWSER_PATH": chromium,
    }
    argv = [sys.executable, "-m", "interp_course.figure_worker", str(run / "in"), str(run / "out"), str(width), str(height)]
    return manager.build_sandbox_command(argv, cwd=str(run / "out"))


def draw(figures: list[dict], manager: SandboxedKernelManager, *, width: int, height: int, timeout: float,
         memory_mb: int, max_png_bytes: int, chromium: str, log) -> list[bytes | None]:
    """A PNG for each figure, or None where it was not drawn (error, time limit, not a PNG)."""
    if not figures:
        return []
    if not os.path.isfile(chromium):
        log.warning("Figures not drawn: no Chromium at %s (apt-get install chromium)", chromium)
        return [None] * len(figures)
    run = workdir.make("interp-course-figures-")
    cgroup = None
    try:
        (run / "in").mkdir()
        (run / "out").mkdir()
        for n, figure in enumerate(figures):
            (run / "in" / f"{n}.json").write_text(json.dumps(figure))
        command = sandbox_command(manager, run, width, height, chromium)
        try:
            cgroup = open_parent(manager.cgroup_root, manager.cgroup_parent).new_child(memory_mb * _MB, 512)
        except CgroupUnavailable as exc:
            if manager.require_cgroup:
                log.warning("Figures not drawn: no cgroup for their sandbox (%s)", exc)
                return [None] * len(figures)
        with open(run / "log", "wb") as out:  # the grader's own file, outside the sandbox
            worker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True, env={"PATH": os.defpath},
                                      preexec_fn=cgroup.join if cgroup else None)
            try:
                worker.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("Drawing the figures took more than %g s; the rest are not drawn", timeout)
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        if worker.returncode:
            with open(run / "log", "rb") as f:
                f.seek(max(0, os.path.getsize(run / "log") - 2000))
                log.warning("The figure sandbox exited with %s: %s", worker.returncode,
                            terminal_safe(f.read().decode("utf-8", "replace")))
        return _read_pngs(run / "out", len(figures), max_png_bytes)
    finally:
        if cgroup is not None:
            cgroup.destroy()
        workdir.remove_tree(run)


def _read_pngs(folder: Path, count: int, limit: int) -> list[bytes | None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        pngs: list[bytes | None] = []
        for n in range(count):
            try:
                data = read_regular_file(fd, f"{n}.png", limit)
            except (FileNotFoundError, UnsafeFile):
                data = None
            pngs.append(data if data is not None and png_size(data) else None)
        return pngs
    finally:
        os.close(fd)
