"""Student figures as static PNGs, drawn in a sandbox of their own.

The grading kernel shows plotly figures as their JSON (``application/vnd.plotly.v1+json``): data,
not a script. After the notebook has run, the grader hands those figures to
``interp_course.sandbox.figure_worker``, which draws them with kaleido in headless Chromium inside a
bubblewrap sandbox like the kernel's: no network, the grading account's uid mapped to nobody, no
capabilities, its own cgroup (memory and processes), a wall-clock limit for all the figures of a
notebook together, and nothing of the course but the figures it is given. The grader then reads
back only regular files (``O_NOFOLLOW``, bounded reads) that are well-formed PNGs.

Why not draw in the kernel itself: Chromium reserves terabytes of address space (V8's sandbox),
which the kernel's per-process address-space limit (``memory_limit_mb``) forbids, and the kernel
would then run a browser beside the student's code for the whole notebook.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from interp_course.sandbox import workdir
from interp_course.sandbox.cgroups import CgroupUnavailable, open_parent
from interp_course.security.images import png_size
from interp_course.security.inert import terminal_safe
from interp_course.security.untrusted_files import UnsafeFile, read_regular_file
from interp_course.sandbox.kernel_manager import SandboxedKernelManager

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # interp_course/
_MB = 1024 * 1024


class Size(NamedTuple):
    """How the figures are drawn: the worker's WIDTH HEIGHT SCALE FONT_SIZE MAX_BYTES."""

    width: int  # CSS px on the page
    height: int
    scale: float  # image pixels per CSS px
    font_size: int  # the least of the figure's text
    max_png_bytes: int


def sandbox_command(manager: SandboxedKernelManager, run: Path, chromium: str, size: Size) -> list[str]:
    """The worker's command line: ``manager``'s sandbox, with the figures read-only and only
    the output folder writable."""
    manager.memory_limit_mb = 0  # Chromium reserves address space it never uses; the cgroup caps memory
    manager.readonly_paths = [str(PACKAGE_DIR), str(run / "in")]
    manager.writable_paths = [str(run / "out")]
    manager.extra_env = {
        "PYTHONPATH": str(PACKAGE_DIR.parent),  # only the package is bound from there
        "BROWSER_PATH": chromium,
    }
    argv = [sys.executable, "-m", "interp_course.sandbox.figure_worker", str(run / "in"), str(run / "out"),
            *map(str, size)]
    return manager.build_sandbox_command(argv, cwd=str(run / "out"))


class DrawnFigures:
    """The PNGs this process has drawn, by the exact bytes of the figure JSON and the drawing's
    settings: the same input file gives the same image, so identical figures (every correct
    student's, as the notebook seeds its randomness) start no Chromium again. Only in memory, and
    only what a sandbox drew from that same input: no student's figure can stand in for another's."""

    def __init__(self, max_bytes: int = 64 * _MB):
        self.max_bytes, self.size = max_bytes, 0
        self._pngs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._drawing: dict[str, threading.Lock] = {}  # held while a thread draws that key

    @contextmanager
    def drawing(self, keys: list[str]):
        """Hold ``keys`` while this thread draws them: a worker thread with the same figures waits,
        then finds them drawn, rather than starting a second Chromium for them."""
        with self._lock:
            locks = [self._drawing.setdefault(key, threading.Lock()) for key in sorted(set(keys))]
        for lock in locks:  # in key order: two threads never wait for each other's
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()
            with self._lock:
                for key in keys:
                    self._drawing.pop(key, None)

    @staticmethod
    def key(figure_json: str, *settings) -> str:
        digest = hashlib.sha256(json.dumps(settings).encode() + b"\0")
        digest.update(figure_json.encode())
        return digest.hexdigest()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            png = self._pngs.get(key)
            if png is not None:
                self._pngs.move_to_end(key)
            return png

    def put(self, key: str, png: bytes) -> None:
        with self._lock:
            if key in self._pngs or len(png) > self.max_bytes:
                return
            self._pngs[key] = png
            self.size += len(png)
            while self.size > self.max_bytes:
                self.size -= len(self._pngs.popitem(last=False)[1])


drawn = DrawnFigures()


def draw(figures: list[dict], manager: SandboxedKernelManager, *, width: int, height: int, scale: float,
         font_size: int, timeout: float, memory_mb: int, max_png_bytes: int, chromium: str, log) -> list[bytes | None]:
    """A PNG for each figure, or None where it was not drawn (error, time limit, not a PNG): shown
    ``width`` x ``height`` CSS px, drawn ``scale`` pixels per CSS px, its text at least ``font_size``
    (``figure_worker.legible``). Figures this process drew before come from ``drawn``; only the
    others go to a sandbox."""
    size = Size(width, height, scale, font_size, max_png_bytes)
    texts = [json.dumps(figure) for figure in figures]
    keys = [DrawnFigures.key(text, *size, chromium) for text in texts]
    pngs = [drawn.get(key) for key in keys]
    missing = [keys[n] for n, png in enumerate(pngs) if png is None]
    if missing:
        with drawn.drawing(missing):
            pngs = [drawn.get(key) for key in keys]  # another thread may have drawn them meanwhile
            todo = [n for n, png in enumerate(pngs) if png is None]
            new = _draw_in_sandbox([texts[n] for n in todo], manager, size=size, timeout=timeout,
                                   memory_mb=memory_mb, chromium=chromium, log=log) if todo else []
            for n, png in zip(todo, new):
                pngs[n] = png
                if png is not None:  # a figure that failed may draw next time (time limit, memory)
                    drawn.put(keys[n], png)
    return pngs


def _draw_in_sandbox(texts: list[str], manager: SandboxedKernelManager, *, size: Size, timeout: float,
                     memory_mb: int, chromium: str, log) -> list[bytes | None]:
    """Draw the figures (their JSON texts) in one sandboxed Chromium; ``size`` as ``draw`` makes it."""
    if not os.path.isfile(chromium):
        log.warning("Figures not drawn: no Chromium at %s (apt-get install chromium)", chromium)
        return [None] * len(texts)
    run = workdir.make("interp-course-figures-")
    cgroup = None
    try:
        (run / "in").mkdir()
        (run / "out").mkdir()
        for n, text in enumerate(texts):
            (run / "in" / f"{n}.json").write_text(text)
        command = sandbox_command(manager, run, chromium, size)
        try:
            cgroup = open_parent(manager.cgroup_root, manager.cgroup_parent).new_child(memory_mb * _MB, 512)
        except CgroupUnavailable as exc:
            if manager.require_cgroup:
                log.warning("Figures not drawn: no cgroup for their sandbox (%s)", exc)
                return [None] * len(texts)
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
        return _read_pngs(run / "out", len(texts), size.max_png_bytes)
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
