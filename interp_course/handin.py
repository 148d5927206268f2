"""The hand-in protocol: how the grader's inputs reach the student's kernel and results come back.

Hidden test cells call ``hand_in(grade_id, "name", ...)`` with the names of the student's
functions and variables. During autograding the grader sets ``INTERP_COURSE_HANDIN`` to a
folder holding

- ``inbox/<grade_id>.safetensors`` + ``inbox/<grade_id>.json``: the inputs it chose. Each case
  ``"<function>/<case>"`` is a list of arguments; a tensor argument is stored in the safetensors
  file under ``"<function>/<case>/<i>"``, any other argument as JSON;
- a writable ``outbox/``, where this module writes ``<grade_id>.safetensors`` (tensor results
  and tensor variables) and ``<grade_id>.json`` (a report per key: the result's type, its value
  when it is a number, string or a small list/dict, any error, and whether an input was changed).

For every callable handed in, this module calls it on each case of that name; every other value
is recorded as it is. Nothing here decides a grade: the kernel runs student code, so anything it
writes is untrusted data that a clean grader process judges (``interp_course.judging``). Formats
are tensors-only safetensors plus size-limited JSON, never pickle, so a hostile object can at
worst fail its own conversion.

Without ``INTERP_COURSE_HANDIN`` (an instructor running the source notebook) the check runs in
this process against the reference and prints its verdict, as a preview.
"""

from __future__ import annotations

import copy
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
MAX_JSON = 20_000  # characters of JSON kept for one non-tensor value (lists, dicts)
# Bytes of one tensor kept: 2x the course's largest value, a 10 x 50257 result in float64 (3.8 MiB).
# A bigger one (W_E itself handed in where a vector is asked) is left out with its size, so only
# the items that need it lose points; the grader reads a cell's hand-in only up to a cap of its own
# (judging.handin_files.MAX_TENSOR_FILE), which this keeps an honest hand-in under.
MAX_VALUE_BYTES = 8 * 2**20


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


# --- the inbox: the grader's inputs ---------------------------------------------------------


def arguments(case) -> tuple:
    """A case's arguments: a tuple as it is, any single value as a one-argument call."""
    return tuple(case) if isinstance(case, tuple) else (case,)


def write_inbox(folder: Path, grade_id: str, inputs: dict) -> None:
    """Write one check's inputs (``{"<function>/<case>": tensor | tuple of args}``)."""
    tensors, spec = {}, {}
    for key, case in inputs.items():
        spec[key] = []
        for i, arg in enumerate(arguments(case)):
            if isinstance(arg, torch.Tensor):
                tensors[f"{key}/{i}"] = arg.contiguous()
                spec[key].append({"tensor": f"{key}/{i}"})
            else:
                spec[key].append({"json": arg})
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / f"{grade_id}.safetensors"))
    (folder / f"{grade_id}.json").write_text(json.dumps(spec))


def read_inbox(folder: Path, grade_id: str) -> dict[str, tuple]:
    tensor_file, spec_file = folder / f"{grade_id}.safetensors", folder / f"{grade_id}.json"
    if not spec_file.exists():
        return {}
    tensors = load_file(str(tensor_file))
    spec = json.loads(spec_file.read_text())
    return {key: tuple(tensors[a["tensor"]] if "tensor" in a else a["json"] for a in args)
            for key, args in spec.items()}


# --- running the student's objects ----------------------------------------------------------


def _as_tensor(value) -> tuple[torch.Tensor | None, str]:
    """(tensor, kind) for a numeric result; kind is what the grader reports to the student."""
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
    module = type(value).__module__
    return None, type(value).__qualname__ if module == "builtins" else f"{module}.{type(value).__qualname__}"


def _plain(value, depth: int = 0):
    """A copy made only of JSON types (numbers, strings, lists, dicts), or raise TypeError."""
    if depth > 8:
        raise TypeError("nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple):
        return [_plain(v, depth + 1) for v in value]
    if type(value) is dict:
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(type(value).__name__)


def _record(value, key: str, tensors: dict, entry: dict) -> None:
    """Put a result or variable into the hand-in: tensors as tensors, plain data as JSON."""
    try:
        tensor, kind = _as_tensor(value)
    except Exception as exc:  # noqa: BLE001 - a hostile object fails only its own conversion
        tensor, kind = None, f"unconvertible ({type(exc).__name__})"
    entry["type"] = kind
    if tensor is not None and tensor.numel() * tensor.element_size() > MAX_VALUE_BYTES:
        # Left out with its size (the grader reads a cell's hand-in only up to a cap): only the
        # items that need this value lose points, and the verdict says why.
        entry["too_large_bytes"] = tensor.numel() * tensor.element_size()
        return
    if tensor is not None:
        tensors[key] = tensor
    if tensor is None or tensor.numel() == 1:
        try:
            plain = _plain(value.item() if tensor is not None and hasattr(value, "item") else value)
            text = json.dumps(plain, allow_nan=True)
        except Exception:  # noqa: BLE001 - not plain data: only its type is reported
            return
        if isinstance(plain, str):
            entry["value"] = _short(plain)
        elif len(text) <= MAX_JSON:
            entry["value"] = plain
        else:
            entry["too_large"] = True


def _changed(before, after) -> bool:
    try:
        if isinstance(before, torch.Tensor):
            return not (after.shape == before.shape and bool(torch.equal(after, before)))
        return after != before
    except Exception:  # noqa: BLE001
        return True


def _run_function(fn, inputs: dict[str, tuple], name: str, tensors: dict, report: dict):
    for key in sorted(k for k in inputs if k.startswith(name + "/")):
        originals = inputs[key]
        given = [a.clone() if isinstance(a, torch.Tensor) else copy.deepcopy(a) for a in originals]
        entry: dict = {}
        start = time.perf_counter()
        try:
            result = fn(*given)
        except Exception as exc:  # noqa: BLE001 - the student's error is the data here
            entry["error"] = _short(f"{type(exc).__name__}: {exc}")
        else:
            _record(result, key, tensors, entry)
        entry["seconds"] = round(time.perf_counter() - start, 4)
        entry["modified_input"] = any(_changed(o, g) for o, g in zip(originals, given))
        report[key] = entry


def collect(objects: dict, inputs: dict[str, tuple]):
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
            report[name] = {}
            _record(obj, name, tensors, report[name])
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
    inputs = read_inbox(Path(folder) / "inbox", grade_id)
    tensors, report = collect(objects, inputs)
    _write(Path(folder) / "outbox", grade_id, tensors, report)
    print(f"Handed in {', '.join(names)} for grading.")


def _preview(grade_id: str, objects: dict) -> None:
    """Instructor convenience: judge in this process (never used while autograding): the same
    checks, with the arguments as the kernel would read them, minus the sandbox."""
    try:
        from interp_course.course import locate
        from interp_course.judging.assignment import load_assignment
        from interp_course.judging.handin_files import HandIn
    except ImportError:
        print("(Hidden checks run only when the notebook is autograded.)")
        return
    course, name = locate(Path.cwd())
    assignment = load_assignment(course, name)
    inputs = assignment.inputs(grade_id)
    tensors, report = collect(objects, {key: arguments(case) for key, case in inputs.items()})
    verdict = assignment.checks[grade_id].verdict(inputs, HandIn(tensors=tensors, report=report), assignment.context())
    print(verdict.text())
    if not math.isclose(verdict.points, verdict.max_points):
        raise AssertionError(f"{grade_id}: {verdict.points:g}/{verdict.max_points:g} points")
