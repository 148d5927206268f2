"""The student-kernel half of grading: run the student's objects on the grader's inputs.

Hidden test cells call ``hand_in(grade_id, "name", ...)`` with the names of the student's
functions and variables. During autograding the grader
sets ``INTERP_COURSE_HANDIN`` to a folder with ``inbox/<grade_id>.safetensors`` (inputs it
chose) and a writable ``outbox/``. For every callable handed in, this module calls it on each
input named ``"<name>/<case>"`` and records what came back; every other value is recorded as
it is. Nothing here decides a grade: the kernel runs student code, so anything it writes is
untrusted data that a clean grader process judges (``interp_course.grading.verdict``).

Formats are tensors-only safetensors plus size-limited JSON: never pickle, so a hostile
object can at worst fail its own conversion.

Without ``INTERP_COURSE_HANDIN`` (an instructor running the source notebook) the check runs
in this process against the reference and prints its verdict, as a preview.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ENV_VAR = "INTERP_COURSE_HANDIN"
MAX_TEXT = 2000  # characters kept of any string or error message handed in


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _as_tensor(value) -> tuple[torch.Tensor | None, str]:
    """(tensor, kind) for what a student function returned; kind is what the grader reports."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone().contiguous(), "torch.Tensor"
    # numpy before float: np.float64 is a subclass of float.
    if isinstance(value, (np.ndarray, np.generic)):
        kind = f"numpy.{type(value).__name__}"
        return torch.from_numpy(np.array(value, dtype=np.float64)).contiguous(), kind
    if isinstance(value, bool):
        return torch.tensor(float(value)), "bool"
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), dtype=torch.float64), "python " + type(value).__name__
    return None, f"{type(value).__module__}.{type(value).__qualname__}"


def _run_function(fn, inputs: dict[str, torch.Tensor], name: str, tensors: dict, report: dict):
    for key in sorted(k for k in inputs if k.startswith(name + "/")):
        original = inputs[key]
        given = original.clone()
        entry: dict = {}
        start = time.perf_counter()
        try:
            result = fn(given)
        except Exception as exc:  # noqa: BLE001 - the student's error is the data here
            entry["error"] = _short(f"{type(exc).__name__}: {exc}")
        else:
            try:
                tensor, kind = _as_tensor(result)
            except Exception as exc:  # noqa: BLE001
                tensor, kind = None, f"unconvertible ({type(exc).__name__})"
            entry["type"] = kind
            if tensor is not None:
                tensors[key] = tensor
        entry["seconds"] = round(time.perf_counter() - start, 4)
        try:
            same = given.shape == original.shape and bool(torch.equal(given, original))
        except Exception:  # noqa: BLE001
            same = False
        entry["modified_input"] = not same
        report[key] = entry


def _record_value(name: str, value, tensors: dict, report: dict):
    if value is None or isinstance(value, str):
        report[name] = {"type": type(value).__name__, "value": None if value is None else _short(value)}
        return
    try:
        tensor, kind = _as_tensor(value)
    except Exception as exc:  # noqa: BLE001
        tensor, kind = None, f"unconvertible ({type(exc).__name__})"
    report[name] = {"type": kind}
    if tensor is not None:
        tensors[name] = tensor


def collect(grade_id: str, objects: dict, inputs: dict[str, torch.Tensor]):
    """Run/record every handed-in object: (tensors, report) ready to be written."""
    tensors: dict[str, torch.Tensor] = {}
    report: dict[str, dict] = {}
    for name, obj in objects.items():
        if obj is Missing:
            report[name] = {"type": "missing"}
        elif callable(obj) and not isinstance(obj, torch.Tensor):
            report[name] = {"type": "function"}
            _run_function(obj, inputs, name, tensors, report)
        else:
            _record_value(name, obj, tensors, report)
    return tensors, report


def _write(outbox: Path, grade_id: str, tensors: dict, report: dict):
    # Write to temporary names and rename, so a kernel that dies mid-write leaves no half file.
    tmp_t, tmp_r = outbox / f".{grade_id}.st.tmp", outbox / f".{grade_id}.json.tmp"
    save_file(tensors, str(tmp_t))
    tmp_r.write_text(json.dumps(report, allow_nan=True))
    os.replace(tmp_t, outbox / f"{grade_id}.safetensors")
    os.replace(tmp_r, outbox / f"{grade_id}.json")


class Missing:
    """Stands for a name the student never defined (its cell failed or was left undone)."""


def hand_in(grade_id: str, *names: str) -> None:
    """Give the grader the student's functions and values, by name, for the check ``grade_id``.

    Names are looked up in the caller's globals (the notebook's namespace), so one undefined
    name costs only the items that need it.
    """
    namespace = sys._getframe(1).f_globals
    objects = {name: namespace.get(name, Missing) for name in names}
    folder = os.environ.get(ENV_VAR)
    if not folder:
        _preview(grade_id, objects)
        return
    inbox = Path(folder) / "inbox" / f"{grade_id}.safetensors"
    inputs = load_file(str(inbox)) if inbox.exists() else {}
    tensors, report = collect(grade_id, objects, inputs)
    _write(Path(folder) / "outbox", grade_id, tensors, report)
    print(f"Handed in {', '.join(names)} for grading.")


def _preview(grade_id: str, objects: dict) -> None:
    """Instructor convenience: judge in this process (never used while autograding)."""
    try:
        from interp_course.grading.verdict import judge_in_process
    except ImportError:
        print("(Hidden checks run only when the notebook is autograded.)")
        return
    verdict = judge_in_process(grade_id, objects, collect)
    print(verdict.text())
    if not math.isclose(verdict.points, verdict.max_points):
        raise AssertionError(f"{grade_id}: {verdict.points:g}/{verdict.max_points:g} points")
