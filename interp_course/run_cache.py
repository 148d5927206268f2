"""Runs kept for regrading: what a notebook's sandboxed run produced, keyed by everything that went in.

A run is the executed notebook (its cell outputs, before judging) and the files the hidden test
cells handed in. Judging is cheap and deterministic; running is what costs (a kernel, imports,
the student's code). So every run is stored under a key made of

- the sanitized notebook nbgrader hands to the grader (the student's code, restored structure),
- the inputs written to the inbox and the submission's extra files given to the kernel,
- the revisions of the models the assignment declares,
- the source of the engine that runs and hands in (``ENGINE_FILES``),

and a later grading of the same submission, also after a check's tolerance or message changed,
re-judges the stored run without starting a kernel. Anything else changed makes a new key.

The cache folder belongs to the grader: only the grader writes it, from bytes it read itself
(regular files, bounded, never following links), and no sandbox ever sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from interp_course.judging.handin_files import UnsafeFile, read_regular_file

PACKAGE = Path(__file__).resolve().parent
# What turns a notebook into a run: a change here changes what a run would produce.
ENGINE_FILES = ("handin.py", "sandbox.py", "cgroups.py", "workdir.py", "preprocessors/resilient_execute.py",
                "preprocessors/grade_in_sandbox.py")
MAX_OUTBOX_FILE = 512 * 2**20
MAX_NOTEBOOK = 64 * 2**20


def _engine_digest() -> str:
    h = hashlib.sha256()
    for name in ENGINE_FILES:
        path = PACKAGE / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return h.hexdigest()


def tree_digest(folder: Path) -> str:
    """Digest of a folder the grader made itself (names and bytes of its regular files)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def run_key(nb, inbox: Path, work: Path, model_revisions: dict[str, str | None]) -> str:
    h = hashlib.sha256()
    h.update(nbformat.writes(nb).encode())
    h.update(tree_digest(inbox).encode())
    h.update(tree_digest(work).encode())
    h.update(json.dumps(model_revisions, sort_keys=True).encode())
    h.update(_engine_digest().encode())
    return h.hexdigest()


@dataclass
class Run:
    """A run as plain data: what comes back from a worker, and what the cache stores."""

    notebook: str  # the executed notebook's JSON
    outbox: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes
    seconds: float = 0.0
    faults: list[dict] = field(default_factory=list)  # kernel deaths and timeouts

    @classmethod
    def collect(cls, nb, outbox: Path, seconds: float, faults: list[dict]) -> "Run":
        """Read a kernel-written outbox as the judge does: regular files only, bounded."""
        files = {}
        try:
            folder = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            folder = None
        if folder is not None:
            try:
                for name in sorted(os.listdir(folder)):
                    if name.startswith(".") or not name.endswith((".json", ".safetensors")):
                        continue
                    try:
                        files[name] = read_regular_file(folder, name, MAX_OUTBOX_FILE)
                    except (UnsafeFile, OSError):
                        pass  # judged as not handed in, cached or not
            finally:
                os.close(folder)
        return cls(nbformat.writes(nb), files, round(seconds, 3), faults)


class RunCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str) -> tuple[object, Path, dict] | None:
        """(executed notebook, outbox folder, info) of a stored run, or None."""
        entry = self.path(key)
        try:
            nb = nbformat.reads((entry / "notebook.ipynb").read_text(), as_version=4)
            info = json.loads((entry / "run.json").read_text())
        except (OSError, ValueError):
            return None
        return nb, entry / "outbox", info

    def put(self, key: str, run: Run) -> None:
        """Store a run; written beside its place and renamed, so a reader never sees half of one."""
        if len(run.notebook) > MAX_NOTEBOOK:
            return
        entry = self.path(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=entry.parent))
        try:
            (tmp / "outbox").mkdir()
            for name, data in run.outbox.items():
                if "/" in name or name.startswith("."):
                    continue
                (tmp / "outbox" / name).write_bytes(data)
            (tmp / "notebook.ipynb").write_text(run.notebook)
            (tmp / "run.json").write_text(json.dumps({"seconds": run.seconds, "faults": run.faults}))
            if entry.exists():
                shutil.rmtree(entry)
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
