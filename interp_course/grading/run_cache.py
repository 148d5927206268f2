"""Kept runs: what one sandboxed run of a notebook produced, keyed by everything that went in.

A run's result is the executed notebook plus what each graded test cell handed in (raw bytes,
``judging.handin_files.RawHandIn``). Judging is cheap and happens afterwards, outside the
sandbox, so a kept run can be judged again with changed checks (a new tolerance, a new message)
without starting a kernel. The key covers what decides what the kernel does:

* the notebook as nbgrader hands it to the grader (sanitized: outputs cleared, structure restored);
* the inputs written to the inbox (a changed check input is a new key) and the submission's
  extra files;
* the models' snapshot revisions, the library versions the kernel imports, the execution
  settings, and the source of the engine files that run the kernel.

A kept run is stored by the grading account in ``gradebook/runs/<key>/``, outside anything a
kernel can see, and written to a temporary name then renamed, so a reader never sees half a run.
The same flat ``{file name: bytes}`` form (``entry_files``) is what a worker sends back: plain
data, never an object unpickled from anything a kernel produced.

A *plan* is the other direction: everything one run needs (notebook, inbox, extra files, the
execution settings), written by the grader for a batch's workers (``interp_course.grading.workers``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
from importlib import metadata
from pathlib import Path

import nbformat

from interp_course import models
from interp_course.judging.handin_files import (MAX_REPORT_FILE, MAX_RUN_HAND_INS, MAX_TENSOR_FILE, RawHandIn,
                                                UnsafeFile, cap_run, hand_in_bytes, read_regular_file)

PACKAGE = Path(__file__).resolve().parent.parent  # interp_course/
# The engine files that decide what happens inside the kernel (not the judging: that re-runs).
ENGINE_FILES = ["handin.py", "sandbox/kernel_manager.py", "sandbox/zygote.py", "sandbox/cgroups.py",
                "sandbox/workdir.py", "grading/run_cache.py", "sandbox/figures.py", "sandbox/figure_worker.py",
                "security/images.py", "security/untrusted_files.py", "preprocessors/resilient_execute.py",
                "preprocessors/grade_in_sandbox.py", "preprocessors/render_figures.py"]
LIBRARIES = ["torch", "transformer-lens", "transformers", "ipykernel", "plotly", "nbclient", "kaleido"]
NOTEBOOK = "notebook.ipynb"
HAND_INS = "hand_ins.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
# A kept run is at most its executed notebook and its hand-ins (``handin_files.MAX_RUN_HAND_INS``).
# The notebook is what was staged (at most staging.MAX_NOTEBOOK_BYTES, 64 MiB) plus its outputs,
# capped while it ran (ResilientExecute.max_notebook_output_chars) and its figures' PNGs (at most
# 30 x 300 kB): within this by construction.
MAX_KEPT_NOTEBOOK = 128 * 2**20
MAX_KEPT_RUN = MAX_KEPT_NOTEBOOK + MAX_RUN_HAND_INS + MAX_REPORT_FILE


def _engine_digest() -> str:
    h = hashlib.sha256()
    for name in ENGINE_FILES:
        h.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes() + b"\0")
    return h.hexdigest()


def _versions() -> dict[str, str]:
    found = {"python": sys.version}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def _files(folder: Path) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of the regular files under a folder the grader made, sorted."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found.append((path.relative_to(folder).as_posix(), path.read_bytes()))
    return found


def _without_cell_ids(nb) -> dict:
    """``nb`` as plain data with each cell's ``id`` replaced by its position. nbformat gives a 4.5
    notebook's cells without an id a new random one on every read, so the planning pass and the
    judging pass (and every regrade) would see different notebooks; no cell's id decides what the
    kernel computes."""
    plain = dict(nb)
    if isinstance(plain.get("cells"), list):
        plain["cells"] = [{**cell, "id": str(index)} if isinstance(cell, dict) and "id" in cell else cell
                          for index, cell in enumerate(plain["cells"])]
    return plain


def run_key(nb, inbox: Path, work: Path, model_ids, settings: dict) -> str:
    """The hash of everything that decides what a run of ``nb`` produces. Each part is fed with
    its label's length and its data's length in front, so no two sets of parts (extra files named
    ``x`` and ``y``, or one named ``x:2:ABwork/y``) feed the same bytes."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        tag = label.encode("utf-8", "surrogateescape")
        h.update(f"{len(tag)}:".encode() + tag + f"{len(data)}:".encode() + data)

    feed("engine", _engine_digest().encode())
    feed("versions", json.dumps(_versions(), sort_keys=True).encode())
    feed("settings", json.dumps(settings, sort_keys=True, default=repr).encode())
    feed("models", json.dumps({m: models.revision(m) for m in sorted(model_ids)}).encode())
    feed("notebook", json.dumps(_without_cell_ids(nb), sort_keys=True).encode())
    for label, folder in (("inbox", inbox), ("work", work)):
        for name, data in _files(folder):
            feed(f"{label}/{name}", data)
    return h.hexdigest()


# --- a run's result: the executed notebook and its raw hand-ins ------------------------------
def entry_files(nb, hand_ins: dict[str, RawHandIn]) -> dict[str, bytes]:
    """A run's result as flat files (what is stored, and what a worker sends back); the hand-ins
    within a notebook's cap (``judge.read_outbox`` has applied it already: this changes nothing then)."""
    hand_ins = cap_run(hand_ins)
    files = {NOTEBOOK: nbformat.writes(nb).encode(),
             HAND_INS: json.dumps({g: {"problem": r.problem} for g, r in hand_ins.items()}).encode()}
    for grade_id, raw in hand_ins.items():
        if raw.problem is None:
            files[f"{grade_id}.safetensors"] = raw.tensor_bytes
            files[f"{grade_id}.json"] = raw.report_bytes
    return files


FAULTS = ("KernelDied", "CellTimeout", "NotebookTimeLimit")  # ResilientExecute's fault errors


def faults(nb) -> list[str]:
    """The kernel faults of an executed notebook, as "KernelDied in cell 28": what may have been
    the machine's doing (memory, time) rather than the student's."""
    return [f"{out.get('ename')} in cell {index}" for index, cell in enumerate(nb.cells)
            for out in cell.get("outputs", []) if out.get("output_type") == "error" and out.get("ename") in FAULTS]


def fault_line(found: list[str]) -> str:
    """``faults``' list as one short line: the first three, then "…"."""
    return "; ".join(found[:3]) + (" …" if len(found) > 3 else "")


def _check_entry(files: dict[str, bytes]) -> None:
    """Refuse a result that is not the shape ``entry_files`` makes (it travelled from a worker)."""
    if not isinstance(files, dict) or NOTEBOOK not in files or HAND_INS not in files:
        raise ValueError("not a run result")
    hand_ins = 0
    for name, data in files.items():
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or not isinstance(data, bytes):
            raise ValueError(f"unexpected file in a run result: {name!r}")
        limit = (MAX_KEPT_NOTEBOOK if name == NOTEBOOK else MAX_REPORT_FILE if name.endswith(".json")
                 else MAX_TENSOR_FILE)
        if len(data) > limit:
            raise ValueError(f"{name} is too large ({len(data):,} bytes, at most {limit:,} are kept)")
        if name not in (NOTEBOOK, HAND_INS):
            hand_ins += len(data)
    if hand_ins > MAX_RUN_HAND_INS:
        raise ValueError(f"the hand-ins are too large together ({hand_ins:,} bytes, at most {MAX_RUN_HAND_INS:,})")


class RunCache:
    """Kept runs in one folder, one sub-folder per key."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"not a run key: {key!r}")
        return self.folder / key

    def __contains__(self, key: str) -> bool:
        return (self._path(key) / HAND_INS).is_file()

    def store(self, key: str, files: dict[str, bytes]) -> None:
        _check_entry(files)
        target = self._path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"  # two threads may store one key
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o755)
        for name, data in files.items():
            if name != HAND_INS:  # written last: its presence marks a complete entry
                (tmp / name).write_bytes(data)
        (tmp / HAND_INS).write_bytes(files[HAND_INS])
        shutil.rmtree(target, ignore_errors=True)  # NO_CACHE: this run replaces the kept one
        try:
            os.rename(tmp, target)
        except OSError:  # another process stored the same key meanwhile: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)

    def load(self, key: str):
        """(executed notebook, {grade_id: RawHandIn}) of a kept run, or None."""
        folder = self._path(key)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            problems = json.loads(read_regular_file(fd, HAND_INS, MAX_REPORT_FILE))
            nb = nbformat.reads(read_regular_file(fd, NOTEBOOK, MAX_KEPT_NOTEBOOK).decode(), as_version=4)
            hand_ins, total = {}, 0
            for grade_id, entry in problems.items():
                if entry.get("problem") is not None:
                    hand_ins[grade_id] = RawHandIn(problem=entry["problem"])
                else:
                    hand_ins[grade_id] = RawHandIn(read_regular_file(fd, f"{grade_id}.safetensors", MAX_TENSOR_FILE),
                                                   read_regular_file(fd, f"{grade_id}.json", MAX_REPORT_FILE))
                    total += hand_in_bytes(hand_ins[grade_id])
                    if total > MAX_RUN_HAND_INS:
                        raise ValueError("the hand-ins are too large together")
            return nb, hand_ins
        except (OSError, UnsafeFile, ValueError, KeyError, AttributeError, TypeError, RecursionError):
            return None  # incomplete, damaged or too large: run again
        finally:
            os.close(fd)


# --- a plan: what a worker needs to run one notebook ----------------------------------------
PLAN_META = "meta.json"


def write_plan(folder: Path, nb, run: Path, model_ids, config: dict) -> None:
    """Write what a worker needs for this run as the folder ``folder`` (whole, or not at all): the
    batch keeps its waiting plans on disk, not in memory (each carries its checks' inputs)."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        shutil.copytree(run / "inbox", tmp / "inbox")
        shutil.copytree(run / "work", tmp / "work", symlinks=True)
        (tmp / NOTEBOOK).write_text(nbformat.writes(nb))
        (tmp / PLAN_META).write_text(json.dumps({"models": list(model_ids), "config": config}))
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def plan_data(folder: Path) -> dict[str, bytes]:
    """A plan folder as flat data, to send to a worker."""
    return {name: data for name, data in _files(folder)}
