"""The grading kernel's own folder: made for one run, outside the course, and removed after it.

nbgrader's output folder (``autograded/<student>/<a>/``) is written, chmod-ed and copied from by
nbgrader after the kernel exits, so the kernel must never see it: a link planted there would be
followed. Instead each run gets a fresh folder holding *copies* of the submission's extra files
(regular files only, opened without following links), bound read-write as the kernel's working
directory. Everything the kernel leaves in it (links, FIFOs, loops, trees too deep for a path,
folders it chmod-ed to 000) is removed afterwards without following a link and without
recursion, and nothing in it is ever read.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tempfile
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 16  # of the submission folder copied in; nbgrader's own copy is never deeper in practice
MAX_BYTES = 512 * 2**20  # a submission's extra files, in all


def make(prefix: str = "interp-course-grade-", parent: str | None = None) -> Path:
    """A new private folder (mode 0700) in the grader's temporary directory, or in ``parent``
    (a zygote's runs folder: see ``GradeInSandbox.run_parent``)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def copy_regular_files(source: Path, target: Path, exclude=()) -> list[str]:
    """Copy the regular files under ``source`` to the new folder ``target``; return what was skipped.

    Links, FIFOs, sockets and devices are skipped, never opened; names matching ``exclude``
    (fnmatch patterns) are left out.
    """
    target.mkdir(mode=0o700)
    skipped: list[str] = []
    budget = [MAX_BYTES]
    top = os.open(source, _DIR)
    try:
        _copy_folder(top, target, exclude, skipped, budget, depth=0)
    finally:
        os.close(top)
    return skipped


def _copy_folder(fd: int, target: Path, exclude, skipped: list[str], budget: list[int], depth: int) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            name = entry.name
            if any(fnmatch.fnmatch(name, pattern) for pattern in exclude):
                continue
            if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
                child = os.open(name, _DIR, dir_fd=fd)
                try:
                    (target / name).mkdir(mode=0o700)
                    _copy_folder(child, target / name, exclude, skipped, budget, depth + 1)
                finally:
                    os.close(child)
            elif entry.is_file(follow_symlinks=False) and _copy_file(fd, name, target / name, budget):
                continue
            else:
                skipped.append(str(target / name))


def _copy_file(fd: int, name: str, dest: Path, budget: list[int]) -> bool:
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return False
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode) or info.st_size > budget[0]:
            return False
        budget[0] -= info.st_size
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      (stat.S_IMODE(info.st_mode) & 0o755) | 0o600)
        try:
            left = info.st_size
            while left > 0:
                chunk = os.read(src, min(left, 1 << 20))
                if not chunk:
                    break
                os.write(out, chunk)
                left -= len(chunk)
        finally:
            os.close(out)
        return True
    finally:
        os.close(src)


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything in it, never following a link, at any depth.

    Works on file descriptors one level at a time (``openat``/``unlinkat``), so neither path
    length nor Python's recursion limit nor the number of open files bounds the depth; a folder
    the kernel made unreadable is made readable again first (it belongs to the grading account).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
        return
    parent = os.open(path.parent, _DIR)
    try:
        fd = _open_dir(parent, path.name)
        below: list[str] = []  # names from `path` down to the folder `fd` is open on
        while True:
            sub = _empty_out(fd)
            if sub is not None:
                child = _open_dir(fd, sub)
                os.close(fd)
                fd = child
                below.append(sub)
                continue
            up = os.open("..", _DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            if not below:
                break
            os.rmdir(below.pop(), dir_fd=fd)
        os.close(fd)
        os.rmdir(path.name, dir_fd=parent)
    finally:
        os.close(parent)


def _open_dir(parent: int, name: str) -> int:
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except PermissionError:
        # Only a real folder gets here (O_NOFOLLOW): a link fails with ELOOP/ENOTDIR instead.
        os.chmod(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR, dir_fd=parent)
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
        os.fchmod(fd, 0o700)  # e.g. 0500: readable, but its entries could not be unlinked
    return fd


def _empty_out(fd: int) -> str | None:
    """Unlink every non-folder in the open folder; return a subfolder still to empty, if any."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None
