"""Exercise 4.3's claim, on the models themselves: moving the mean row of W_E into every row of W_pos
leaves every activation, and so every next-token probability, as it was, while the tied unembedding
(W_U = W_Eᵀ) moves every logit at a position by the same −h·μ.

Checked with the notebook's own helper cell, in a fresh interpreter as a student's kernel would run
it, on the course's stand-ins (both models), and on the full-size stand-ins (12 layers, 768, 50257
tokens) when ``FULL_SIZE_HF_HOME`` names a cache built by ``python -m grader_tests.puzzle1.standins
--full-size``. The hidden check of Exercise 4.3 then gives the reference run full marks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from interp_course import models
from grader_tests.puzzle1.checks import GPT2, GPT_NEO
from interp_course.course import CHECKOUT, Course

SOURCE = nbformat.read(Course().source("puzzle1") / "puzzle1.ipynb", as_version=4)
HELPERS = next(c.source for c in SOURCE.cells if c.metadata["nbgrader"]["grade_id"] == "moved_mean_setup")

SCRIPT = r"""
import contextlib, json, sys
import torch
from transformer_lens.model_bridge import TransformerBridge
sys.path.insert(0, sys.argv[1])
from grader_tests.puzzle1 import checks
from interp_course import handin
from interp_course.judging import HandIn

out = {}
for name in sys.argv[3:]:
    neo_model = TransformerBridge.boot_transformers(name, device="cpu").eval()
    scope = {"torch": torch, "contextlib": contextlib, "neo_model": neo_model}
    exec(sys.argv[2], scope)  # the notebook's helper cell
    run, replaced = scope["final_resid_and_logits"], scope["replaced_embeddings"]
    tokens = scope["neo_tokens"]
    W_E = neo_model.W_E.detach().float().clone()
    W_pos = neo_model.W_pos.detach().float().clone()
    mu = W_E.mean(dim=0)
    h, before = run(neo_model, tokens)
    with replaced(neo_model, W_E - mu, W_pos + mu):
        _, after = run(neo_model, tokens)
    _, again = run(neo_model, tokens)
    shift = (after - before).double()
    formula = -(h.double() @ mu.double())
    scale = before.abs().max().item()
    values = {"final_resid": h, "logits_before": before, "logits_after": after, "predicted_shift": formula.float()}
    tensors, report = handin.collect(values, {})
    verdict = checks.CHECKS[[c.grade_id for c in checks.CHECKS].index("test_moved_mean")].verdict(
        {}, HandIn(tensors=tensors, report=report), {checks.GPT_NEO: W_E})
    out[name] = {
        "n_pos": tokens.shape[-1],
        "largest_probability_change": (after.softmax(-1) - before.softmax(-1)).abs().max().item(),
        "spread_over_vocab": ((shift.max(-1).values - shift.min(-1).values).max() / scale).item(),
        "shift_vs_formula": ((shift.mean(-1) - formula).abs().max() / scale).item(),
        "smallest_shift": (formula.abs().min() / scale).item(),
        "restored": bool(torch.equal(again, before)),
        "points": verdict.points,
        "max_points": verdict.max_points,
    }
print(json.dumps(out))
"""


def run_claim(hf_home: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        env.pop(var, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(CHECKOUT), HELPERS, GPT_NEO, GPT2], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_claim(result: dict) -> None:
    for name, r in result.items():
        assert r["largest_probability_change"] < 1e-4, (name, r)  # no next-token probability moves...
        assert r["smallest_shift"] > 1e-3, (name, r)  # ...although every logit does,
        assert r["spread_over_vocab"] < 1e-5, (name, r)  # by one amount per position,
        assert r["shift_vs_formula"] < 1e-5, (name, r)  # and that amount is −h·μ
        assert r["restored"], name  # the helper puts the weights back exactly
        assert r["points"] == r["max_points"] == 2.5, (name, r)  # the hidden check agrees


def test_on_the_course_stand_ins():
    hf_home = models.STANDIN_HF_HOME
    if not (hf_home / "hub").is_dir():
        pytest.skip("the stand-ins are not built (make setup)")
    result = run_claim(hf_home)
    assert set(result) == {GPT_NEO, GPT2}
    assert_claim(result)


@pytest.mark.skipif(not os.environ.get("FULL_SIZE_HF_HOME"), reason="FULL_SIZE_HF_HOME names no full-size stand-ins")
def test_on_the_full_size_stand_ins():
    result = run_claim(Path(os.environ["FULL_SIZE_HF_HOME"]))
    assert all(r["n_pos"] > 5 for r in result.values())
    assert_claim(result)
