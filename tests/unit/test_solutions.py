"""The reference implementations honour the contract the notebook states."""

import pytest
import torch

from solutions.puzzle1 import (DIAGNOSTICS, center, cosine_sim_with_mean, mean_pairwise_cosine_sim, moved_mean_logits,
                               normalize, pairwise_cosine_sim)

FUNCTIONS = [normalize, pairwise_cosine_sim, center, cosine_sim_with_mean, mean_pairwise_cosine_sim]


def sample(n=40, d=12, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=dtype) + 2.0


def test_values_against_the_definitions():
    W = sample(dtype=torch.float64)
    unit = W / W.norm(dim=1, keepdim=True)
    assert torch.allclose(normalize(W), unit)
    cos = torch.nn.functional.cosine_similarity(W[:, None], W[None], dim=-1)
    assert torch.allclose(pairwise_cosine_sim(W), cos)
    assert torch.allclose(center(W).mean(0), torch.zeros(W.shape[1], dtype=W.dtype), atol=1e-12)
    mean = W.mean(0, keepdim=True)
    assert torch.allclose(cosine_sim_with_mean(W), torch.nn.functional.cosine_similarity(W, mean, dim=-1))
    off_diagonal = ~torch.eye(len(W), dtype=torch.bool)
    assert torch.allclose(mean_pairwise_cosine_sim(W), cos[off_diagonal].mean())


def test_zero_row_gives_zeros_not_nan():
    W = sample()
    W[3] = 0
    out = normalize(W)
    assert not out.isnan().any() and (out[3] == 0).all()
    assert not mean_pairwise_cosine_sim(W).isnan()


def test_inputs_are_never_modified_and_results_are_new_tensors():
    for fn in FUNCTIONS:
        W = sample()
        before = W.clone()
        out = fn(W)
        assert torch.equal(W, before), fn.__name__
        assert out.data_ptr() != W.data_ptr(), fn.__name__


def test_exact_mean_scales_to_a_large_vocabulary():
    W = torch.randn(200_000, 8, generator=torch.Generator().manual_seed(1)) + 0.5
    value = mean_pairwise_cosine_sim(W)  # an n×n matrix here would need 149 GiB
    assert value.shape == () and 0 < value < 1


def test_the_notebooks_off_diagonal_helper_equals_the_boolean_mask():
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[2] / "source" / "puzzle1" / "puzzle1.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "subset")
    helper = next(node for node in ast.parse(cell).body if isinstance(node, ast.FunctionDef) and node.name == "off_diagonal")
    scope = {"torch": torch}
    exec(compile(ast.Module([helper], type_ignores=[]), "subset", "exec"), scope)
    for n in (1, 2, 3, 7, 50):
        scope["N_SUBSET"] = n
        M = torch.arange(n * n, dtype=torch.float32).view(n, n)
        assert torch.equal(scope["off_diagonal"](M), M[~torch.eye(n, dtype=torch.bool)]), n
        assert torch.equal(scope["off_diagonal"](M.T), M.T[~torch.eye(n, dtype=torch.bool)]), n  # not contiguous
        assert torch.equal(scope["off_diagonal"](M.numpy()), M[~torch.eye(n, dtype=torch.bool)]), n
    # A matrix of the wrong size fails as indexing with the [n, n] mask did, and says why.
    with pytest.raises(IndexError, match=r"one row and one column per token, \[50, 50\], not \[7, 7\]"):
        scope["off_diagonal"](torch.zeros(7, 7))


def test_the_diagnostics_against_their_definitions():
    W = sample(n=41, dtype=torch.float64)  # an odd count: one median
    S = torch.linalg.svdvals(W)
    assert DIAGNOSTICS["top_share"](W) == pytest.approx(float(S[0] ** 2 / (S ** 2).sum()), rel=1e-12)
    S = torch.linalg.svdvals(W - W.mean(0))
    assert DIAGNOSTICS["pca_top_share"](W) == pytest.approx(float(S[0] ** 2 / (S ** 2).sum()), rel=1e-12)
    column = (W ** 2).sum(0)
    assert DIAGNOSTICS["top_coordinate_share"](W) == pytest.approx(float(column.max() / column.sum()), rel=1e-12)
    mean = W.mean(0)
    assert DIAGNOSTICS["mean_to_token_norm"](W) == pytest.approx(float(mean.norm() / W.norm(dim=1).sort().values[20]))
    cos = torch.nn.functional.cosine_similarity(W, mean[None], dim=-1)
    assert DIAGNOSTICS["median_cos_with_mean"](W) == pytest.approx(float(cos.sort().values[20]))
    for name, diagnostic in DIAGNOSTICS.items():
        before = W.clone()
        assert isinstance(diagnostic(W.float()), float) and torch.equal(W, before), name


def test_moving_the_mean_shifts_every_tied_logit_at_a_position_by_the_same_amount():
    W_E = sample(n=50, d=12, dtype=torch.float64)
    h = torch.randn(4, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    before, after, shift = moved_mean_logits(h, W_E)
    assert torch.allclose(before, h @ W_E.T)
    assert torch.allclose(after, h @ (W_E - W_E.mean(0)).T)  # the tied unembedding changed with W_E
    assert torch.allclose(after - before, shift[:, None].expand_as(before))  # one shift per position
    assert (shift.abs() > 0.1).all()  # the logits really move...
    assert torch.allclose(after.softmax(-1), before.softmax(-1))  # ...and no probability does
