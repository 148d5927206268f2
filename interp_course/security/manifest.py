"""The release manifest: what the instructor's files were when ``make release`` ran.

For every file of source/, release/, solutions/, grader_tests/ (but not the corpus notebooks in
grader_tests/<a>/submissions/), nbgrader_config.py and the grading package itself, it records
the sha256 and the permission bits; a link or any other non-regular file is recorded as such.
Grading refuses when the course differs from it in any way (a changed, added, removed or
re-moded file), so a grade never runs on instructor files that something else rewrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import interp_course
from interp_course.course import Course

PACKAGE = Path(interp_course.__file__).resolve().parent
_SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = (".pyc",)


def _describe(path: Path) -> str:
    info = os.lstat(path)
    mode = f"{stat.S_IMODE(info.st_mode):04o}"
    if stat.S_ISLNK(info.st_mode):
        return f"link -> {os.readlink(path)}"
    if not stat.S_ISREG(info.st_mode):
        return f"special {stat.S_IFMT(info.st_mode):o}"
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()} mode:{mode}"


def _walk(top: Path, key: str, skip_dirs=()) -> dict[str, str]:
    entries = {}
    if not os.path.lexists(top):
        return entries
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        return {key: _describe(top)}
    for folder, dirs, files in os.walk(top):  # links to folders are listed in dirs, never followed
        here = Path(folder)
        rel = here.relative_to(top)
        for name in list(dirs):
            if name in _SKIP_NAMES or (rel / name).as_posix() in skip_dirs:
                dirs.remove(name)
            elif os.path.islink(here / name):
                dirs.remove(name)
                entries[f"{key}/{(rel / name).as_posix()}"] = _describe(here / name)
        for name in files:
            if not name.endswith(_SKIP_SUFFIXES):
                entries[f"{key}/{(rel / name).as_posix()}"] = _describe(here / name)
    return entries


def course_files(course: Course) -> dict[str, str]:
    """Every protected file of the course, keyed by a stable name, with its hash and mode."""
    entries = {}
    for name in ("source", "release", "solutions"):
        entries.update(_walk(course.root / name, name))
    submissions = {f"{a}/submissions" for a in os.listdir(course.root / "grader_tests")} \
        if (course.root / "grader_tests").is_dir() else set()
    entries.update(_walk(course.root / "grader_tests", "grader_tests", skip_dirs=submissions))
    entries.update(_walk(course.root / "nbgrader_config.py", "nbgrader_config.py"))
    entries.update(_walk(PACKAGE, "package:interp_course"))
    return entries


def write(course: Course) -> Path:
    course.manifest.write_text(json.dumps(course_files(course), indent=1, sort_keys=True) + "\n")
    return course.manifest


def differences(course: Course) -> list[str]:
    """What differs from the manifest, e.g. ``changed: solutions/<a>/__init__.py``; [] if nothing."""
    try:
        fd = os.open(course.manifest, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd) as f:
            recorded = json.load(f)
    except FileNotFoundError:
        return [f"no release manifest ({course.manifest.name}): run `make release`"]
    except (OSError, ValueError) as exc:
        return [f"the release manifest cannot be read ({type(exc).__name__})"]
    current = course_files(course)
    found = [f"changed: {k}" for k in sorted(current.keys() & recorded.keys()) if current[k] != recorded[k]]
    found += [f"added: {k}" for k in sorted(current.keys() - recorded.keys())]
    found += [f"removed: {k}" for k in sorted(recorded.keys() - current.keys())]
    return found
