"""Reading what a student kernel handed in (see ``interp_course.handin``), as untrusted data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

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

    def string(self, key: str) -> str | None:
        value = self.entry(key).get("value")
        return value if isinstance(value, str) else None

    def modified_input(self, key: str) -> bool:
        return self.entry(key).get("modified_input") is True


def read_hand_in(outbox: Path, grade_id: str) -> HandIn:
    tensor_file, report_file = outbox / f"{grade_id}.safetensors", outbox / f"{grade_id}.json"
    if not (tensor_file.is_file() and report_file.is_file()):
        return HandIn(problem="nothing was handed in")
    if tensor_file.stat().st_size > MAX_TENSOR_FILE or report_file.stat().st_size > MAX_REPORT_FILE:
        return HandIn(problem="the hand-in was too large to read")
    try:
        tensors = load_file(str(tensor_file))
        report = json.loads(report_file.read_text())
    except Exception as exc:  # noqa: BLE001 - any unreadable hand-in is a fault of the submission
        return HandIn(problem=f"the hand-in could not be read ({type(exc).__name__})")
    if not isinstance(report, dict):
        return HandIn(problem="the hand-in report was malformed")
    return HandIn(tensors=tensors, report=report)
