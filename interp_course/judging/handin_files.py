"""Reading what a student kernel handed in (see ``interp_course.handin``), as untrusted data.

The outbox is writable by the student's kernel, so every file in it may be a symlink, a FIFO, a
device or huge. Each is opened relative to the outbox folder without following links
(``O_NOFOLLOW``), must be a regular file (``fstat``), and is read up to a fixed size; anything
else makes the hand-in unreadable, which scores that cell 0 and nothing more.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from interp_course.security.untrusted_files import UnsafeFile, read_regular_file

if TYPE_CHECKING:  # torch is imported where tensors are read (parse_hand_in)
    import torch

# The course's largest hand-in of one cell at real scale is ~7.7 MiB of tensors (two 10 × 50257
# logit tensors, in float64; 3.8 MiB in float32). Anything bigger is padding or a
# mistake: refused unread, and the cell's verdict says what was too large.
MAX_TENSOR_FILE = 16 * 2**20  # one cell's tensors
MAX_REPORT_FILE = 2 * 2**20  # one cell's report
MAX_RUN_HAND_INS = 64 * 2**20  # all of a notebook's hand-ins together (what a kept run holds besides the notebook)


@dataclass
class HandIn:
    """The student's results for one check: tensors by key plus a JSON report by key."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    report: dict[str, dict] = field(default_factory=dict)
    problem: str = ""  # set when the files were missing or unreadable

    def entry(self, key: str) -> dict:
        value = self.report.get(key)
        return value if isinstance(value, dict) else {}

    def tensor(self, key: str) -> torch.Tensor | None:
        return self.tensors.get(key)

    def kind(self, key: str) -> str:
        kind = str(self.entry(key).get("type", "nothing"))
        size = self.entry(key).get("too_large_bytes")
        if type(size) is int:  # handin.py left a too-large tensor out (handin.MAX_VALUE_BYTES)
            kind += f" of {_size(size)}, too large for the grader to take as one value"
        return kind

    def error(self, key: str) -> str:
        return str(self.entry(key).get("error", ""))

    def value(self, key: str):
        """A non-tensor result as plain JSON data (number, string, list, dict), else None."""
        return self.entry(key).get("value")

    def string(self, key: str) -> str | None:
        value = self.value(key)
        return value if isinstance(value, str) else None

    def number(self, key: str) -> float | None:
        """A single number, whether it came back as a tensor, a numpy scalar or a Python number."""
        t = self.tensor(key)
        if t is not None:
            return float(t.reshape(())) if t.numel() == 1 else None
        value = self.value(key)
        return float(value) if type(value) in (int, float) else None

    def modified_input(self, key: str) -> bool:
        return self.entry(key).get("modified_input") is True


@dataclass(frozen=True)
class RawHandIn:
    """A test cell's hand-in as read from the outbox, not yet parsed: the two files' bytes, or
    why they could not be read. Plain bytes, so a run's hand-ins can be cached and judged again."""

    tensor_bytes: bytes = b""
    report_bytes: bytes = b""
    problem: str | None = None


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB" if n >= 2**10 else f"{n} bytes"


def too_large(what: str, size: int | None, limit: int, per: str = "for one cell") -> str:
    """A hand-in's problem when ``what`` came to more than ``limit`` bytes, for the cell's verdict."""
    came = f" came to {_size(size)}," if size else " came to"
    return (f"the hand-in was too large to read: {what}{came} more than the {_size(limit)} the grader reads {per} "
            "(hand in only what the exercise asks for; a result far larger than that is usually the wrong tensor)")


def read_raw_hand_in(outbox: Path, grade_id: str) -> RawHandIn:
    try:
        folder_fd = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return RawHandIn(problem="nothing was handed in")
    try:
        files = ((f"{grade_id}.safetensors", MAX_TENSOR_FILE, f"its tensors ({grade_id}.safetensors)"),
                 (f"{grade_id}.json", MAX_REPORT_FILE, f"its report ({grade_id}.json)"))
        read = []
        for name, limit, what in files:
            try:
                read.append(read_regular_file(folder_fd, name, limit))
            except UnsafeFile as exc:
                if "too large" not in str(exc):
                    raise
                try:
                    size = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_size
                except OSError:
                    size = None
                return RawHandIn(problem=too_large(what, size, limit))
    except FileNotFoundError:
        return RawHandIn(problem="nothing was handed in")
    except UnsafeFile as exc:
        return RawHandIn(problem=f"the hand-in could not be read ({exc})")
    finally:
        os.close(folder_fd)
    return RawHandIn(*read)


def hand_in_bytes(raw: RawHandIn) -> int:
    return len(raw.tensor_bytes) + len(raw.report_bytes)


def cap_run(hand_ins: dict[str, RawHandIn]) -> dict[str, RawHandIn]:
    """A notebook's hand-ins, in notebook order, up to ``MAX_RUN_HAND_INS`` bytes together: a cell
    whose hand-in would take them past it is not read, and its verdict says so. What is judged
    now and what a kept run holds (and is judged from at a regrade) are then the same."""
    capped, total = {}, 0
    for grade_id, raw in hand_ins.items():
        size = hand_in_bytes(raw)
        if raw.problem is None and total + size > MAX_RUN_HAND_INS:
            capped[grade_id] = RawHandIn(problem=too_large("this cell's hand-in with those of the cells above it",
                                                           total + size, MAX_RUN_HAND_INS, "for one notebook"))
            continue
        total += size
        capped[grade_id] = raw
    return capped


def parse_hand_in(raw: RawHandIn) -> HandIn:
    if raw.problem:
        return HandIn(problem=raw.problem)
    try:
        from safetensors.torch import load as load_safetensors

        tensors = load_safetensors(raw.tensor_bytes)
        report = json.loads(raw.report_bytes)
    except Exception as exc:  # noqa: BLE001 - any unreadable hand-in is a fault of the submission
        return HandIn(problem=f"the hand-in could not be read ({type(exc).__name__})")
    if not isinstance(report, dict):
        return HandIn(problem="the hand-in report was malformed")
    return HandIn(tensors=tensors, report=report)


def read_hand_in(outbox: Path, grade_id: str) -> HandIn:
    return parse_hand_in(read_raw_hand_in(outbox, grade_id))
