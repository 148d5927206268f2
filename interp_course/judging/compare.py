"""Judging a student's results against the reference: values, likely bugs, the itemised verdict.

Assignment-agnostic: an assignment's ``grader_tests/<a>/checks.py`` calls these with its own
reference functions, inputs and diagnoses. Inputs are ``{"<function>/<case>": args}`` where
``args`` is one tensor (a one-argument call) or a tuple of arguments.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch

from interp_course.handin import arguments
from interp_course.judging.handin_files import HandIn
from interp_course.judging.verdict import Item

Tensor = torch.Tensor
# (buggy_function, hint): the hint names the mistake when the student's result equals the buggy
# function's. (None, (error_substring, hint)) matches an exception's message instead.
Diagnosis = tuple[Callable | None, object]


def case_name(key: str) -> str:
    return key.split("/", 1)[1]


def close(student, expected, atol: float, rtol: float) -> bool:
    """Same values (any dtype, any shape with the same number of elements)?"""
    if student is None:
        return False
    if not isinstance(expected, Tensor):
        if isinstance(student, Tensor):
            student = float(student.reshape(())) if student.numel() == 1 else None
        if not isinstance(student, (int, float)) or isinstance(student, bool) or student is None:
            return False
        return math.isclose(float(student), float(expected), rel_tol=rtol, abs_tol=atol)
    if not isinstance(student, Tensor):
        if isinstance(student, (int, float)) and not isinstance(student, bool):
            student = torch.tensor(float(student))
        else:
            return False
    if student.numel() != expected.numel():
        return False
    student = student.reshape(expected.shape).double()
    return bool(torch.allclose(student, expected.double(), atol=atol, rtol=rtol, equal_nan=False))


def result(handed: HandIn, key: str):
    """What the student's function returned for a case: a tensor, a number, or None."""
    tensor = handed.tensor(key)
    return tensor if tensor is not None else handed.number(key)


def input_shape(args: tuple) -> str:
    """The shapes of a call's tensor arguments, as a student reads them: "[7, 16]"."""
    shapes = [str(list(a.shape)) for a in args if isinstance(a, Tensor)]
    return " and ".join(shapes) if shapes else "no tensor"


def error_size(student, expected) -> str:
    """How far a result is from the reference: its largest absolute error, or what differs."""
    if student is None:
        return ""
    if isinstance(student, bool) or not isinstance(student, (Tensor, int, float)):
        return ""
    got = student.detach().double().flatten() if isinstance(student, Tensor) else torch.tensor([float(student)])
    want = expected.detach().double().flatten() if isinstance(expected, Tensor) else torch.tensor([float(expected)])
    if got.numel() != want.numel():
        shape = list(student.shape) if isinstance(student, Tensor) else "a number"
        return f"result of shape {shape} where {list(expected.shape) if isinstance(expected, Tensor) else 'a number'} was expected"
    if not got.isfinite().all() and want.isfinite().all():
        return f"{int((~got.isfinite()).sum())} NaN/inf values"
    return f"largest error {(got - want).abs().max().item():.2g}"


def diagnose(args: tuple, student, error: str, diagnoses: list[Diagnosis], atol: float, rtol: float) -> str:
    """The hint of the first diagnosis that reproduces the student's result (or error)."""
    if error:
        for bug, hint in diagnoses:
            if bug is None and hint[0] in error:
                return f"it raised {error.splitlines()[0][:200]} — {hint[1]}"
        return f"it raised {error.splitlines()[0][:200]}"
    if student is None:
        return "it returned something that is not a tensor or a number"
    for bug, hint in diagnoses:
        if bug is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. std() of one row
                wrong = bug(*args)
        except Exception:  # noqa: BLE001 - a mistake that cannot occur on this input
            continue
        same_shape = not isinstance(student, Tensor) or not isinstance(wrong, Tensor) or wrong.shape == student.shape
        if same_shape and close(student, wrong, atol, rtol):
            return hint
    if isinstance(student, Tensor) and student.isnan().any():
        return "the result contains NaN"
    if isinstance(student, float) and math.isnan(student):
        return "the result is NaN"
    return "the values differ from the reference"


_REFERENCE_RESULTS: dict = {}


def reference_result(reference: Callable, args: tuple):
    """``reference(*args)``, computed once per batch: an assignment's inputs are made once and
    shared by every submission (``Assignment.inputs``), so the same objects come back. The args
    are kept with the result, so an id is never reused for another object while it is cached."""
    key = (reference, tuple(map(id, args)))
    hit = _REFERENCE_RESULTS.get(key)
    if hit is None or any(a is not b for a, b in zip(hit[0], args)):
        hit = _REFERENCE_RESULTS[key] = (args, reference(*args))
    return hit[1]


def judge_function(
    name: str,
    inputs: dict,
    handed: HandIn,
    reference: Callable,
    diagnoses: list[Diagnosis],
    value_points: float,
    contract_points: float,
    *,
    atol: float,
    rtol: float,
    cases: list[str] | None = None,
    returns: str = "torch.Tensor",
) -> list[Item]:
    """Values on every case, then the contract: the right kind of result, inputs untouched.

    ``returns`` is the kind the contract asks for: ``"torch.Tensor"`` (of the reference's shape)
    or ``"number"`` (a Python or numpy number, or a one-element tensor).
    """
    keys = sorted(k for k in inputs if k.startswith(name + "/") and (cases is None or case_name(k) in cases))
    failures, wrong_kind, modified = [], [], []
    for key in keys:
        args = arguments(inputs[key])
        student, expected = result(handed, key), reference_result(reference, args)
        if not close(student, expected, atol, rtol):
            hint = diagnose(args, student, handed.error(key), diagnoses, atol, rtol)
            size = error_size(student, expected)
            where = f"input {case_name(key)} of shape {input_shape(args)}" + (f": {size}" if size else "")
            failures.append((case_name(key), hint, where))
        kind = handed.kind(key)
        if student is not None:
            tensor_ok = kind == "torch.Tensor" and isinstance(student, Tensor)
            if returns == "torch.Tensor" and (not tensor_ok or tuple(student.shape) != tuple(expected.shape)):
                got = kind if not tensor_ok else f"shape {list(student.shape)}"
                wrong_kind.append(f"expected a torch.Tensor of shape {list(expected.shape)}, got {got}")
            elif returns == "number" and handed.number(key) is None:
                wrong_kind.append(f"expected a single number, got {kind}")
        if handed.modified_input(key):
            modified.append(case_name(key))

    values = Item(f"{name} gives the right values on {len(keys)} inputs", value_points)
    if handed.kind(name) == "missing":
        values.message = f"`{name}` is not defined: did the cell that defines it run without errors?"
    elif not failures:
        values.points = value_points
    else:
        # Each mistake once, with the first input it showed on (its shape, how far off).
        by_hint: dict[str, list[str]] = {}
        for _, hint, where in failures:
            by_hint.setdefault(hint, []).append(where)
        values.message = f"wrong on {len(failures)} of {len(keys)} inputs: " + "; ".join(
            f"{hint} (e.g. {wheres[0]}{f'; {len(wheres) - 1} more' if len(wheres) > 1 else ''})"
            for hint, wheres in by_hint.items()
        )

    what = "a new torch.Tensor of the right shape" if returns == "torch.Tensor" else "a number"
    contract = Item(f"{name} returns {what} and leaves its inputs unchanged", contract_points)
    if contract_points == 0:
        return [values]
    answered = [k for k in keys if result(handed, k) is not None]
    if not answered:
        contract.message = "no result to check"
    elif failures:
        # Only a right answer can be well-formed: otherwise any result of the right shape (even
        # the input handed back) would earn these points.
        contract.message = "earned together with the right values"
    elif modified:
        contract.message = (
            f"{name} modified its input in place (on {', '.join(modified[:3])}): "
            "build a new tensor instead of writing into it (e.g. `W - m`, not `W -= m`)"
        )
    elif wrong_kind:
        contract.message = wrong_kind[0]
    else:
        contract.points = contract_points
    return [values, contract]


def how_far(got: float, expected: float, tolerance: float) -> str:
    """How far a number is from the grader's, without giving the grader's number away: feedback may
    reach students before the deadline, and "off by d" next to their own value would tell them it.
    Two bands: within ten times the tolerance (a rounding or precision slip) or beyond (a wrong
    method)."""
    if abs(got - expected) <= 10 * tolerance:
        return f"close to the grader's value but not within the allowed ±{tolerance:.2g}"
    return f"more than ten times the allowed ±{tolerance:.2g} away from the grader's value"


def value_item(handed: HandIn, name: str, expected: float, tolerance: float, description: str,
               points: float, hint: str) -> Item:
    """A variable the student computed, compared with the grader's own number."""
    item = Item(description, points)
    got = handed.number(name)
    if got is None or not math.isfinite(got):
        kind = handed.kind(name)
        item.message = (f"`{name}` is not defined: did the cell that computes it run without errors?"
                        if kind == "missing" else f"`{name}` should be a single finite number (got {kind})")
    elif abs(got - expected) <= tolerance:
        item.points = points
    else:
        item.message = f"`{name}` = {got:.4g} is {how_far(got, expected, tolerance)}; {hint}"
    return item
