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

from interp_course.untrusted_files import UnsafeFile, read_regular_file

if TYPE_CHECKING:  # torch is imported where tensors are read (parse_hand_in)
    import torch

MAX_TENSOR_FILE = 512 * 2**20  # a hand-in is a few MB; anything bigger is refused, not loaded
MAX_REPORT_FILE = 2 * 2**20


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
        return str(self.entry(key).get("type", "nothing"))

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


def read_raw_hand_in(outbox: Path, grade_id: str) -> RawHandIn:
    try:
        folder_fd = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return RawHandIn(problem="nothing was handed in")
    try:
        tensor_bytes = read_regular_file(folder_fd, f"{grade_id}.safetensors", MAX_TENSOR_FILE)
        report_bytes = read_regular_file(folder_fd, f"{grade_id}.json", MAX_REPORT_FILE)
    except FileNotFoundError:
        return RawHandIn(problem="nothing was handed in")
    except UnsafeFile as exc:
        return RawHandIn(problem=f"the hand-in could not be read ({exc})")
    finally:
        os.close(folder_fd)
    return RawHandIn(tensor_bytes, report_bytes)


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
