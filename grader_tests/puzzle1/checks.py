"""The hidden checks of Puzzle 1, one per graded test cell of the notebook (keyed by grade_id).

Each check has two halves, both run by the grader in a clean process (see
``interp_course.judging.Check``):
- ``inputs(embeddings)`` picks the inputs the student's functions are called on (seeded);
- ``judge(inputs, handed, embeddings)`` turns what the student's kernel handed back into
  itemised points, each with a message that names the likely mistake.

``embeddings`` maps each model id in ``MODELS`` to its W_E. Judges are pure functions of
(inputs, hand-in, embeddings): they never see the student's objects, only tensors and plain data,
so nothing the student's code patches can reach them. References are computed in float64.

Tolerances
==========
Every tolerance on a number computed from a whole W_E comes from floating-point error measured
at real scale, not from the size of the mistakes it should catch. Rule: the smallest of 1, 2 or
5 × 10^k that is at least 5× the largest float32 error of any legitimate implementation we tried,
on any of three machines: this course's 2-core CPU (torch 2.13; 1 and 2 threads agree), a
16-core CPU and an NVIDIA H200 (torch 2.11, CUDA 13, TF32 off as by default). Float32 results
against float64, on seeded 50257 × 768 matrices with a planted shared mean (mean pairwise cosine
0.90, like GPT-Neo, and 0.30, like GPT-2), the shape of both real W_E:

================================  ===================================  ===================  ===========
quantity                          legitimate implementations tried     worst error (where)  tolerance
================================  ===================================  ===================  ===========
exact mean pairwise cosine, raw   sum(0), F.normalize, s.norm()**2,    5.7e-7 (2-core CPU,  TOL_VOCAB
or per-token centred (also via    chunked float64, ones @ U (BLAS      gemv; 6.6e-8 CUDA;   5e-6
F.layer_norm), whole vocabulary   gemv)                                sum(0) 2.4e-8)
the same, 200,000 × 8 input       the same                             1.9e-7 (gemv)        TOL_BIG 1e-6
share of ‖W‖² on the top          svd, svdvals, eigh/eigvalsh of WᵀW,  4.9e-5 (CUDA svd;    TOL_SHARE
singular direction, raw or        pca_lowrank (randomized), with       CPU ≤ 6.2e-7)        5e-4
centred (PCA)                     Σσ² as the denominator
the same, and the largest         ‖W‖_F² as W.norm()**2 (or a column's 0.59% relative      RTOL_SHARE
coordinate's share, with a norm   share as W.norm(dim=0)**2, or        (2-core CPU: torch's 5e-2 relative
of the whole matrix in the        einsum): the float32 norm of a       float32 norm of 38.6M
denominator                       38.6-million-entry matrix            entries is 0.27% low)
largest coordinate's share        square().sum(0), W*W, ones @ W²      1.2e-8               (TOL_SHARE)
                                  (gemv), numpy
median cosine with the mean       reference, F.cosine_similarity;      3.1e-7 (largest      TOL_MEDIAN_COS
                                  the mean by mean(0) or ones @ W / n  error of any token)  2e-6
|mean| / median token norm        median, quantile(0.5); the mean by   3.1e-7 (gemv mean;   TOL_RATIO 2e-6
                                  mean(0), sum(0) / n, ones @ W / n    mean(0): 2.6e-8)
1 − |cos| for the mean direction  mean(0), sum(0), ones @ W            1.1e-11 (CUDA)       TOL_DIRECTION
                                                                                            1e-10 (1.4e-5 rad)
================================  ===================================  ===================  ===========

For scale: float32's own spacing at 0.9 is 6e-8, and the reference algorithm's error on a whole
vocabulary (2.4e-8 at 0.9, 4.2e-8 at 0.3 on CPU) is that rounding. A median over an even number
of tokens (the 8192-token stand-ins) is accepted anywhere between the two middle values, so
torch.median and the numpy/quantile convention both pass. A share is accepted within TOL_SHARE or
RTOL_SHARE of its value, whichever is wider.

Two kinds of number were measured on this course's CPU only (no GPU was at hand when they were
added); their tolerances are bounded with the CPU-to-CUDA ratio the table shows for matmuls:

- **Means over the seeded 5,000-token subset** (``neo_mean_cos``, ``neo_centered_mean_cos``), compared
  with the grader's own value on the same rows: mean(), sum()/count, a float64 mean of float32
  cosines, F.normalize with the boolean mask, numpy, (sum − trace)/n(n−1), and the O(n·d) identity in
  float32 and through a gemv: worst 3.6e-8 on the CPU. Their mean is off by no more than the
  largest error of one pairwise cosine, 2.0e-6 on the H200 (below), so TOL_SUBSET_MEAN = 1e-5.
- **The logits of Exercise 4.3** (``logits_before``, ``logits_after``, ``predicted_shift``), on the
  full-size GPT-Neo stand-in (12 layers, d_model 768, 50257 tokens; four prompts of 2 to 35 tokens),
  against the float64 ``final_resid @ W_Eᵀ`` and ``final_resid @ (W_E − μ)ᵀ``: the model's own logits
  3.8e-7 of the prompt's largest |logit|; after the move (μ by mean(0), sum(0)/n, ones @ W / n or
  in float64; W_E − μ or center) 3.5e-7; the shift measured from the logits 2.5e-7, or as
  −final_resid @ μ in float32 1.4e-7. Times 3.4 (CUDA over CPU for the pairwise cosines below) and
  5: TOL_LOGITS = 1e-5 of the largest |logit|. The trained checkpoints may amplify the rounding of
  the moved residual stream more than the stand-in's random blocks: `make verify-real` grades the
  reference on the real models.

What the tolerances then catch at real scale (tests/test_real_scale.py judges the corpus on such
matrices): per-token instead of vocabulary centring by ~0.9; the mean of the normalized rows
instead of the mean points 2.7e-8 (0.90) to 5e-7 (0.30) away in 1 − cos; PCA's share instead of the
raw one by ~0.7; centring the subset with the whole vocabulary's mean instead of its own moves its
mean cosine by 2e-4 to 4e-4, and with the median by 1e-4 to 2e-3; guessing the post's 0.9 is 9e-5
off, 0 for the centred mean 2e-3 (GPT-Neo-like). (Another random 5,000-token subset moves the mean
cosine by 4e-6 to 4e-4 over 8 subsets: sometimes inside the tolerance, which is no loss, since
another subset is no mistake.)
Including the diagonal shifts an exact mean by (1 − m)/n: 1.4e-5 for a GPT-2-like vocabulary
(caught) and 4.0e-6 on the 200,000-row input (caught), but only 2.0e-6 for a GPT-Neo-like one
(m = 0.9): inside TOL_VOCAB, and within 4× of what a BLAS-summed float32 implementation
legitimately gets wrong, so that one item cannot tell it apart; the mistake is caught by the other
two. (On the 8192-token stand-ins the shift is 1.2e-5 for GPT-Neo and 8.5e-5 for GPT-2, both
caught.) In Exercise 4.3, forgetting W_pos moves the logits by 0.52 of the largest, the wrong sign
by 1.1, an untied unembedding (no shift) by 0.55.

Function values on the grader's inputs (≤ 256 rows of d_model ≤ 768, or small random matrices)
are compared with ``atol = rtol = 1e-4``: at least 50× the float32 error measured for these
functions at real scale (normalize 2.7e-8, pairwise cosines 5.8e-7 on CPU and 2.0e-6 on CUDA,
cosines with the mean 4.2e-7, centred rows 5.3e-8 of the largest entry), and wide enough for
TF32 matmuls (pairwise cosines off by 9.4e-5 on the H200, within atol + rtol·|x|), F.normalize's
eps and float64 or float32 casts inside the student's code; every function mistake in the
corpus is off by more than 1e-2.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

import solutions.puzzle1 as ref
from interp_course.judging import (Check, Diagnosis, Item, close, diagnose, how_far, judge_function, no_inputs,
                                   reference_result, value_item)

ATOL = RTOL = 1e-4
TOL_VOCAB = 5e-6  # exact mean pairwise cosine over a whole vocabulary
TOL_BIG = 1e-6  # exact mean pairwise cosine of the BIG_N × BIG_D input
TOL_SHARE = 5e-4  # share of ‖W‖_F² along a singular direction or in one coordinate
RTOL_SHARE = 5e-2  # the same, relative: ‖W‖_F² from torch's float32 norm of a whole W_E
TOL_DIRECTION = 1e-10  # 1 − cos between directions (an angle of 1.4e-5 rad)
TOL_MEDIAN_COS = 2e-6  # median cosine with the mean, outside the two middle values
TOL_RATIO = 2e-6  # |mean| / median norm, outside the two middle values
TOL_SUBSET_MEAN = 1e-5  # mean pairwise cosine over the seeded 5,000-token subset
TOL_LOGITS = 1e-5  # Exercise 4.3's logits, relative to the prompt's largest |logit|

SEED = 1234
W_E_ROWS = 256  # rows of each real W_E handed to the student's functions
# Bigger than any vocabulary here: its n×n matrix (149 GiB) cannot be allocated on any grading
# machine, so only an O(n·d) method passes, with or without the sandbox's memory cap.
BIG_N, BIG_D = 200_000, 8
# The notebook's subset: torch.randperm(d_vocab, generator=torch.Generator().manual_seed(0))[:5000].
N_SUBSET, SUBSET_SEED = 5000, 0

GPT_NEO = "EleutherAI/gpt-neo-125M"
GPT2 = "gpt2"
MODELS = (GPT_NEO, GPT2)  # the grader loads W_E of each and passes them as `embeddings`

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# Inputs


def _generator(offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + offset)


def _embedding_rows(W: Tensor, offset: int, rows: int = W_E_ROWS) -> Tensor:
    picked = torch.randperm(W.shape[0], generator=_generator(offset))[:rows]
    return W[picked].clone()


def standard_inputs(name: str, embeddings: dict[str, Tensor]) -> dict[str, Tensor]:
    """Shapes and dtypes every matrix function must handle, keyed "<function>/<case>"."""
    g = _generator()
    cases = {
        "random_5x8": torch.randn(5, 8, generator=g),
        "random_1x3": torch.randn(1, 3, generator=g),
        # Square, so a missing keepdim broadcasts silently instead of raising.
        "square_8x8": torch.randn(8, 8, generator=g),
        # A shared offset, like GPT-Neo's mean vector: per-token vs per-vocab mistakes differ.
        "offset_64x16": torch.randn(64, 16, generator=g) + 3.0 * torch.randn(1, 16, generator=g),
        "float64_7x5": torch.randn(7, 5, generator=g, dtype=torch.float64) + 1.0,
        "gpt_neo_W_E_rows": _embedding_rows(embeddings[GPT_NEO], 1),
        "gpt2_W_E_rows": _embedding_rows(embeddings[GPT2], 2),
    }
    return {f"{name}/{case}": tensor for case, tensor in cases.items()}


def _diagnostic_inputs(embeddings: dict[str, Tensor]) -> dict[str, Tensor]:
    """Matrices for the student's diagnostic_fn, each with an odd number of rows so that every
    median convention gives the same value; one is low-rank, one has a shared offset."""
    g = _generator(5)
    cases = {
        "random_7x5": torch.randn(7, 5, generator=g),
        "square_9x9": torch.randn(9, 9, generator=g),
        "offset_63x16": torch.randn(63, 16, generator=g) + 3.0 * torch.randn(1, 16, generator=g),
        "low_rank_63x16": torch.randn(63, 2, generator=g) @ torch.randn(2, 16, generator=g)
        + 0.05 * torch.randn(63, 16, generator=g),
        "float64_9x5": torch.randn(9, 5, generator=g, dtype=torch.float64) + 1.0,
        "gpt_neo_W_E_rows": _embedding_rows(embeddings[GPT_NEO], 6, W_E_ROWS - 1),
        "gpt2_W_E_rows": _embedding_rows(embeddings[GPT2], 7, W_E_ROWS - 1),
    }
    return {f"diagnostic_fn/{case}": tensor for case, tensor in cases.items()}


# ---------------------------------------------------------------------------------------------
# The grader's own numbers for a whole W_E, computed once per embedding matrix (float64)


def _middle(sorted_values: Tensor) -> tuple[float, float]:
    """The two middle values (equal for an odd count): any median convention lies between them."""
    n = len(sorted_values)
    return float(sorted_values[(n - 1) // 2]), float(sorted_values[n // 2])


def _spectrum(X: Tensor) -> Tensor:
    """Squared singular values (descending), via XᵀX in float64."""
    return torch.linalg.eigvalsh(X.T @ X).flip(0).clamp_min(0)


def subset_rows(n_vocab: int) -> Tensor:
    """The rows of the notebook's W_E_sub."""
    return torch.randperm(n_vocab, generator=torch.Generator().manual_seed(SUBSET_SEED))[:N_SUBSET]


class Stats:
    """The grader's own numbers for one whole W_E, in float64, each computed once when first needed."""

    def __init__(self, W: Tensor):
        self.X = W.double()
        self.n = len(self.X)

    @cached_property
    def norms(self) -> Tensor:
        return self.X.norm(dim=-1)

    @cached_property
    def mean(self) -> Tensor:
        return self.X.mean(dim=0)

    @cached_property
    def ratio_range(self) -> tuple[float, float]:
        """|mean| / median norm, for a median anywhere between the two middle norms."""
        low, high = _middle(self.norms.sort().values)
        return float(self.mean.norm() / high), float(self.mean.norm() / low)

    @cached_property
    def median_cos_range(self) -> tuple[float, float]:
        return _middle(ref.cosine_sim_with_mean(self.X).sort().values)

    @cached_property
    def mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.X))

    @cached_property
    def per_token(self) -> Tensor:
        return self.X - self.X.mean(dim=-1, keepdim=True)

    @cached_property
    def per_token_mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.per_token))

    # --- the 5,000-token subset of Parts 1 and 3

    @cached_property
    def subset(self) -> Tensor:
        return self.X[subset_rows(self.n)]

    @cached_property
    def subset_mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.subset))

    @cached_property
    def subset_centered_mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.subset - self.subset.mean(dim=0)))

    # --- the diagnostics of Exercise 3.1

    @cached_property
    def spectrum(self) -> Tensor:
        return _spectrum(self.X)

    @property
    def top_share(self) -> float:
        return float(self.spectrum[0] / self.spectrum.sum())

    @property
    def sqrt_top_share(self) -> float:  # σ₁ / Σσ, a mistake
        singular = self.spectrum.sqrt()
        return float(singular[0] / singular.sum())

    @cached_property
    def pca_top_share(self) -> float:
        squares = _spectrum(self.X - self.mean)
        return float(squares[0] / squares.sum())

    @cached_property
    def per_token_pca_share(self) -> float:  # per-token instead of per-coordinate centring, a mistake
        squares = _spectrum(self.per_token)
        return float(squares[0] / squares.sum())

    @cached_property
    def top_coordinate_share(self) -> float:
        return ref.top_coordinate_share(self.X)

    @cached_property
    def top_row_share(self) -> float:  # the largest token's share instead of a coordinate's, a mistake
        per_row = self.X.square().sum(dim=-1)
        return float(per_row.max() / per_row.sum())

    def diagnostic(self, name: str) -> tuple[float, float]:
        """A diagnostic's value as the range any median convention gives (low == high for the rest)."""
        if name == "mean_to_token_norm":
            return self.ratio_range
        if name == "median_cos_with_mean":
            return self.median_cos_range
        value = {"top_share": self.top_share, "pca_top_share": self.pca_top_share,
                 "top_coordinate_share": self.top_coordinate_share}[name]
        return value, value


_STATS: dict[int, tuple[Tensor, Stats]] = {}


def stats(W: Tensor) -> Stats:
    """The Stats of an embedding matrix, shared by every check and submission of a batch."""
    hit = _STATS.get(id(W))
    if hit is None or hit[0] is not W:
        hit = _STATS[id(W)] = (W, Stats(W))
    return hit[1]


# ---------------------------------------------------------------------------------------------
# The checks


def _close(student, expected, atol=ATOL, rtol=RTOL) -> bool:
    return close(student, expected, atol, rtol)


def _diagnose(x: Tensor, student, error: str, diagnoses: list[Diagnosis]) -> str:
    return diagnose((x,), student, error, diagnoses, ATOL, RTOL)


def _judge(name, inputs, handed, reference, diagnoses, value_points, contract_points, cases=None, returns="torch.Tensor"):
    return judge_function(name, inputs, handed, reference, diagnoses, value_points, contract_points,
                          atol=ATOL, rtol=RTOL, cases=cases, returns=returns)


def _missing(handed, name: str, wanted: str) -> str:
    kind = handed.kind(name)
    if kind == "missing":
        return f"`{name}` is not defined: did the cell that computes it run without errors?"
    return f"`{name}` should be {wanted} (got {kind})"


def _near(got: float, value: float, tolerance: float) -> bool:
    return abs(got - value) <= tolerance


def _share_tolerance(value: float) -> float:
    return max(TOL_SHARE, RTOL_SHARE * abs(value))


def _range_item(handed, name: str, bounds: tuple[float, float], tolerance: float, description: str,
                points: float, hint: str) -> Item:
    """A number that may lie anywhere between two bounds (e.g. the two middle values of a median)."""
    item = Item(description, points)
    got = handed.number(name)
    low, high = bounds
    if got is None or not math.isfinite(got):
        item.message = _missing(handed, name, "a single finite number")
    elif low - tolerance <= got <= high + tolerance:
        item.points = points
    else:
        item.message = f"`{name}` = {got:.6g} is off; {hint}"
    return item


KEEPDIM = "did you forget keepdim=True, so the [n] norms broadcast against the last dimension?"

NORMALIZE_BUGS: list[Diagnosis] = [
    (lambda W: W / W.norm(dim=0, keepdim=True),
     "you normalized each column (over tokens, dim 0): normalize each token's row, i.e. over the last dimension"),
    (lambda W: W / W.norm(dim=-1, keepdim=True) ** 2, "you divided by the squared norm: divide by the norm itself"),
    (lambda W: W / W.norm(dim=-1), KEEPDIM),
    (lambda W: W / W.abs().sum(dim=-1, keepdim=True), "you divided by the L1 norm (sum of |x|): use the L2 norm"),
    (None, ("must match the size", KEEPDIM)),
]


def _normalize_judge(inputs, handed, embeddings):
    # The one subtle part of this one-liner, the zero row, is worth as much as the rest.
    items = _judge("normalize", inputs, handed, ref.normalize, NORMALIZE_BUGS, 0.25, 0.25,
                   cases=[k.split("/")[1] for k in inputs if not k.endswith("zero_row")])
    key = "normalize/zero_row"
    zero = Item("normalize maps a zero row to zeros (no NaN) and still normalizes the others", 0.5)
    student = handed.tensor(key)
    if _close(student, ref.normalize(inputs[key])):
        zero.points = 0.5
    elif student is not None and student.isnan().any():
        zero.message = ("a zero row gave NaN (0/0): clamp the norm, e.g. `.clamp_min(1e-12)`, "
                        "or use F.normalize")
    else:
        zero.message = _diagnose(inputs[key], student, handed.error(key), NORMALIZE_BUGS)
    return items + [zero]


def _normalize_inputs(embeddings):
    inputs = standard_inputs("normalize", embeddings)
    with_zero = torch.randn(4, 6, generator=_generator(3))
    with_zero[2] = 0.0
    inputs["normalize/zero_row"] = with_zero
    return inputs


PAIRWISE_BUGS: list[Diagnosis] = [
    (lambda W: W @ W.T, "these are raw dot products: normalize the rows before multiplying"),
    (lambda W: ref.normalize(W).T @ ref.normalize(W),
     "this compares columns (d_model × d_model); rows are tokens, so use W_normed @ W_normed.T"),
    (lambda W: ref.normalize(W.T) @ ref.normalize(W.T).T,
     "this compares columns (d_model × d_model); rows are tokens, so use W_normed @ W_normed.T"),
    (lambda W: (W / W.norm(dim=0, keepdim=True)) @ (W / W.norm(dim=0, keepdim=True)).T,
     "the rows were normalized over the wrong dimension (dim 0) before the product"),
]

CENTER_BUGS: list[Diagnosis] = [
    (lambda W: W - W.mean(dim=-1, keepdim=True),
     "you subtracted each token's mean over d_model (what LayerNorm and TransformerLens' "
     "compatibility mode do); subtract the mean embedding over tokens, W.mean(dim=0)"),
    (lambda W: W - W.median(dim=0, keepdim=True).values,
     "you subtracted the median; the zero point we want is the mean embedding"),
    (lambda W: W - W.mean(), "you subtracted one scalar (the mean of all entries); subtract the mean row"),
    (lambda W: (W - W.mean(dim=0)) / W.std(dim=0),
     "you also divided by the standard deviation; centering only subtracts the mean"),
    (lambda W: W - W.mean(dim=1, keepdim=True), "you subtracted the mean over d_model, not over tokens"),
]

WITH_MEAN_BUGS: list[Diagnosis] = [
    (lambda W: ref.normalize(W) @ ref.normalize(ref.normalize(W).mean(dim=0, keepdim=True)).T.squeeze(-1),
     "you took the mean of the normalized rows; compare with the mean embedding W.mean(dim=0) itself"),
    (lambda W: (W @ W.mean(dim=0)), "these are dot products with the mean: divide by both norms"),
    (lambda W: ref.normalize(W) @ W.mean(dim=0), "the mean vector was not normalized"),
    (lambda W: ref.normalize(W) @ ref.normalize(W.mean(dim=1, keepdim=True).T).T.squeeze(-1),
     "you averaged over d_model instead of over tokens"),
]


def _pairwise_judge(inputs, handed, embeddings):
    return _judge("pairwise_cosine_sim", inputs, handed, ref.pairwise_cosine_sim, PAIRWISE_BUGS, 0.75, 0.25)


def _center_judge(inputs, handed, embeddings):
    return _judge("center", inputs, handed, ref.center, CENTER_BUGS, 0.75, 0.25)


def _with_mean_judge(inputs, handed, embeddings):
    return _judge("cosine_sim_with_mean", inputs, handed, ref.cosine_sim_with_mean, WITH_MEAN_BUGS, 0.75, 0.25)


# --- the exact mean over all pairs ----------------------------------------------------------------


def _diagonal_included(W: Tensor) -> Tensor:
    """The mean over all n² entries, diagonal included, in O(n·d): ‖Σ x̂ᵢ‖² / n²."""
    return ref.normalize(W).sum(0).square().sum() / W.shape[0] ** 2


# Every buggy variant is O(n·d), so diagnosing even the 200,000-row input allocates no n×n matrix.
MEAN_BUGS: list[Diagnosis] = [
    (_diagonal_included, "you included the diagonal (every token with itself, cosine 1): average over pairs i ≠ j"),
    (lambda W: (ref.normalize(W).sum(0).square().sum() - W.shape[0]) / W.shape[0] ** 2,
     "there are n(n−1) ordered pairs with i ≠ j, not n²"),
    (lambda W: (W.sum(0).square().sum() - W.square().sum()) / (W.shape[0] * (W.shape[0] - 1)),
     "these are dot products: normalize the rows first"),
]


def _exact_mean(W: Tensor) -> Tensor:
    return ref.mean_pairwise_cosine_sim(W.double())


def _mean_inputs(embeddings):
    inputs = standard_inputs("mean_pairwise_cosine_sim", embeddings)
    inputs["mean_pairwise_cosine_sim/whole_vocab_sized"] = torch.randn(BIG_N, BIG_D, generator=_generator(4)) + 0.5
    return inputs


def _mean_judge(inputs, handed, embeddings):
    # One row has no pairs (0/0), so the 1×3 case does not apply here.
    small = [k.split("/")[1] for k in inputs if not k.endswith(("whole_vocab_sized", "random_1x3"))]
    values, contract = _judge("mean_pairwise_cosine_sim", inputs, handed, ref.mean_pairwise_cosine_sim,
                              MEAN_BUGS, 1.5, 0.5, cases=small)
    key = "mean_pairwise_cosine_sim/whole_vocab_sized"
    big = Item(f"mean_pairwise_cosine_sim is right on {BIG_N:,} tokens, in O(n·d) memory", 0.5)
    W = inputs[key]
    got = handed.tensor(key)
    got = got if got is not None else handed.number(key)
    expected = float(reference_result(_exact_mean, (W,)))  # once per batch: W is the same tensor
    error = handed.error(key)
    if got is not None and _close(got, expected, TOL_BIG, 0.0):
        big.points = 0.5
    elif error or got is None:
        big.message = (
            (f"it raised {error.splitlines()[0][:160]}; " if error else "it returned no number; ")
            + f"an n×n matrix for {BIG_N} tokens needs {BIG_N**2 * 4 / 2**30:.0f} GiB: use the identity "
            "mean = (‖Σᵢ x̂ᵢ‖² − n) / (n(n−1)), which never builds it"
        )
    else:
        hint = diagnose((W.double(),), got, "", MEAN_BUGS, TOL_BIG, 0.0)
        big.message = f"at {BIG_N:,} rows, {how_far(float(got), expected, TOL_BIG)}: {hint}"
    return [values, contract, big]


# --- Part 1: the reproduced number ----------------------------------------------------------------


def _subset_hint(got: float | None, s: Stats, centred: bool) -> str:
    if got is None:
        return ""
    expected = s.subset_centered_mean_cos if centred else s.subset_mean_cos
    if _near(got, expected + (1 - expected) / N_SUBSET, TOL_SUBSET_MEAN):
        return "it includes the diagonal (every token with itself): take the mean of the off-diagonal entries"
    if centred:
        per_token = s.subset - s.subset.mean(dim=-1, keepdim=True)
        if _near(got, float(ref.mean_pairwise_cosine_sim(per_token)), 1e-3):
            return ("you subtracted each token's own mean over d_model; center(W) subtracts the mean embedding "
                    "over tokens (dim=0)")
        if _near(got, float(ref.mean_pairwise_cosine_sim(s.subset - s.mean)), TOL_SUBSET_MEAN):
            return "subtract the subset's own mean embedding: center(W_E_sub), as the exercise says"
        return ("center W_E_sub with your center() first, then average the off-diagonal cosines of "
                "pairwise_cosine_sim(center(W_E_sub))")
    return "average the off-diagonal entries of pairwise_cosine_sim(W_E_sub), on the seeded subset W_E_sub as given"


def _reproduce_judge(inputs, handed, embeddings):
    s = stats(embeddings[GPT_NEO])
    return [value_item(handed, "neo_mean_cos", s.subset_mean_cos, TOL_SUBSET_MEAN,
                       "`neo_mean_cos`: mean pairwise cosine of GPT-Neo's embeddings on W_E_sub (reproduces the puzzle)",
                       1.0, _subset_hint(handed.number("neo_mean_cos"), s, centred=False))]


# --- Part 3: the student's diagnostic -------------------------------------------------------------


def _plain_name(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().strip("\"'`").strip().lower().replace(" ", "_").replace("-", "_")


def _svd_share(X: Tensor, squared: bool = True) -> float:
    squares = _spectrum(X.double())
    values = squares if squared else squares.sqrt()
    return float(values[0] / values.sum())


DIAGNOSTIC_BUGS: dict[str, list[Diagnosis]] = {
    "top_share": [
        (lambda W: _svd_share(W, squared=False), "square the singular values: the share of ‖W‖² is σ₁² / Σσ², not σ₁ / Σσ"),
        (lambda W: ref.pca_top_share(W), "that is the share after subtracting each coordinate's mean (PCA's); "
         "top_share is for W as it is"),
    ],
    "pca_top_share": [
        (lambda W: ref.top_share(W), "that is the share for W as it is; PCA first subtracts each coordinate's mean "
         "over tokens (W - W.mean(dim=0))"),
        (lambda W: ref.top_share(W - W.mean(dim=-1, keepdim=True)), "you subtracted each token's own mean (dim=-1); PCA "
         "subtracts each coordinate's mean over tokens (dim=0)"),
        (lambda W: _svd_share(W - W.mean(dim=0), squared=False), "square the singular values: σ₁² / Σσ², not σ₁ / Σσ"),
    ],
    "top_coordinate_share": [
        (lambda W: float(W.double().square().sum(-1).max() / W.double().square().sum()),
         "that is the largest row's (token's) share: a coordinate is a column, so sum the squares over tokens (dim=0)"),
        (lambda W: float(W.double().abs().sum(0).max() / W.double().abs().sum()),
         "square the entries: a coordinate's share of ‖W‖_F² is Σᵢ W_ij² / Σ W²"),
        (lambda W: float(W.double().square().mean(0).max()), "divide by the total Σ W², not by the number of rows"),
    ],
    "mean_to_token_norm": [
        (lambda W: float(W.double().mean(0).norm() / W.double().norm(dim=-1).mean()),
         "divide by the median token norm, not the mean one"),
        (lambda W: float(ref.normalize(W.double()).mean(0).norm()),
         "take the norm of the mean of the rows themselves, and divide by the median row norm"),
    ],
    "median_cos_with_mean": [
        (lambda W: float(ref.cosine_sim_with_mean(W.double()).mean()), "take the median over rows, not the mean"),
        (lambda W: float((ref.normalize(W.double()) @ ref.normalize(ref.normalize(W.double()).mean(0, keepdim=True)).T).median()),
         "compare with the mean of the rows themselves, not of the normalized rows"),
    ],
}
NAMES_TEXT = ", ".join(f'"{name}"' for name in ref.DIAGNOSTICS)


def _diagnostic_value_hint(got: float, name: str, s: Stats) -> str:
    if name in ("top_share", "pca_top_share"):
        other = s.pca_top_share if name == "top_share" else s.top_share
        if _near(got, other, _share_tolerance(other)):
            return DIAGNOSTIC_BUGS[name][1 if name == "top_share" else 0][1]
        if name == "top_share" and _near(got, s.sqrt_top_share, _share_tolerance(s.sqrt_top_share)):
            return DIAGNOSTIC_BUGS["top_share"][0][1]
        if name == "pca_top_share" and _near(got, s.per_token_pca_share, _share_tolerance(s.per_token_pca_share)):
            return DIAGNOSTIC_BUGS["pca_top_share"][1][1]
    if name == "top_coordinate_share" and _near(got, s.top_row_share, _share_tolerance(s.top_row_share)):
        return DIAGNOSTIC_BUGS["top_coordinate_share"][0][1]
    low, high = s.diagnostic(name)
    on_subset = ref.DIAGNOSTICS[name](s.subset)
    if not low <= on_subset <= high and _near(got, on_subset, _share_tolerance(on_subset)):
        return "compute it on the whole W_E_neo, not on the 5,000-token subset"
    return "compute diagnostic_fn(W_E_neo) on the whole vocabulary, with the table's definition"


def _diagnostic_judge(inputs, handed, embeddings):
    s = stats(embeddings[GPT_NEO])
    name = _plain_name(handed.string("diagnostic"))
    if name not in ref.DIAGNOSTICS:
        got = handed.string("diagnostic")
        why = (_missing(handed, "diagnostic", "one of the table's names, as a string") if got is None
               else f"`diagnostic` = {got[:60]!r} is not in the table")
        message = f"{why}: choose one of {NAMES_TEXT}, so the grader knows which definition to check"
        return [Item("`diagnostic_fn` computes the diagnostic you named, on 7 matrices", 1.5, 0.0, message),
                Item("`diagnostic_fn` returns a number and leaves its input unchanged", 0.5, 0.0, "no diagnostic named"),
                Item("`diagnostic_value`: your diagnostic of GPT-Neo's whole W_E", 1.0, 0.0, "no diagnostic named")]
    values, contract = _judge("diagnostic_fn", inputs, handed, ref.DIAGNOSTICS[name], DIAGNOSTIC_BUGS[name], 1.5, 0.5,
                              returns="number")
    values.description = f"`diagnostic_fn` computes {name} (as the table defines it) on 7 matrices"
    value = Item(f"`diagnostic_value`: {name} of GPT-Neo's whole W_E", 1.0)
    got = handed.number("diagnostic_value")
    low, high = s.diagnostic(name)
    tolerance = {"mean_to_token_norm": TOL_RATIO, "median_cos_with_mean": TOL_MEDIAN_COS}.get(name)
    tolerance = tolerance if tolerance is not None else _share_tolerance(low)
    if got is None or not math.isfinite(got):
        value.message = _missing(handed, "diagnostic_value", "a single finite number")
    elif low - tolerance <= got <= high + tolerance:
        value.points = 1.0
    else:
        value.message = (f"`diagnostic_value` = {got:.4g} is {how_far(got, (low + high) / 2, tolerance)}; "
                         + _diagnostic_value_hint(got, name, s))
    return [values, contract, value]


# --- Part 3: the evidence behind the explanation ----------------------------------------------------


def _evidence_judge(inputs, handed, embeddings):
    s = stats(embeddings[GPT_NEO])
    direction = Item("`mean_direction` points along GPT-Neo's mean embedding", 0.5)
    got = handed.tensor("mean_direction")
    if got is None or got.numel() != s.mean.numel() or not torch.isfinite(got).all() or got.double().norm() == 0:
        direction.message = f"`mean_direction` should be a d_model-sized vector (got {handed.kind('mean_direction')})"
    else:
        cos = torch.nn.functional.cosine_similarity(got.flatten().double(), s.mean, dim=0).item()
        if 1 - cos <= TOL_DIRECTION:
            direction.points = 0.5
        else:
            direction.message = (f"its cosine with the mean embedding is {cos:.6f}; use W_E_neo.mean(dim=0), over all "
                                 "tokens (not the subset, not the normalized rows)")
    return [
        direction,
        _range_item(handed, "mean_to_token_norm", s.ratio_range, TOL_RATIO,
                    "`mean_to_token_norm`: norm of the mean embedding / median token norm", 0.5,
                    "divide W_E_neo.mean(0).norm() by the median of W_E_neo.norm(dim=-1), over all tokens"),
        _range_item(handed, "median_cos_with_mean", s.median_cos_range, TOL_MEDIAN_COS,
                    "`median_cos_with_mean`: median cosine of a token with the mean embedding", 1.0,
                    "take the median of cosine_sim_with_mean(W_E_neo), over all tokens"),
        value_item(handed, "neo_centered_mean_cos", s.subset_centered_mean_cos, TOL_SUBSET_MEAN,
                   "`neo_centered_mean_cos`: mean pairwise cosine after subtracting the mean embedding", 1.0,
                   _subset_hint(handed.number("neo_centered_mean_cos"), s, centred=True)),
    ]


# --- Part 4: the whole vocabulary ------------------------------------------------------------------


def _vocab_hint(got: float | None, s: Stats, per_token: bool) -> str:
    expected = s.per_token_mean_cos if per_token else s.mean_cos
    if got is not None and _near(got, expected + (1 - expected) / s.n, TOL_VOCAB / 2):
        return "it includes the diagonal (every token with itself): average over pairs i ≠ j"
    if per_token and got is not None and _near(got, float(ref.mean_pairwise_cosine_sim(s.X - s.mean)), 1e-3):
        return ("that is the mean over tokens subtracted (center); per-token centring subtracts each token's own "
                "mean over d_model: W - W.mean(dim=-1, keepdim=True)")
    if per_token:
        return "subtract W.mean(dim=-1, keepdim=True) from the whole W_E, then use your exact mean"
    return "compute it on the whole W_E (all tokens), not the 5000-token subset, with your exact mean"


def _whole_vocab_judge(inputs, handed, embeddings):
    items = []
    for model, label in ((GPT_NEO, "GPT-Neo"), (GPT2, "GPT-2 small")):
        s = stats(embeddings[model])
        short = "neo" if model == GPT_NEO else "gpt2"
        raw, per_token = f"{short}_mean_cos_exact", f"{short}_per_token_centered_mean_cos"
        items.append(value_item(handed, raw, s.mean_cos, TOL_VOCAB,
                                f"`{raw}`: exact mean pairwise cosine over {label}'s whole vocabulary", 0.5,
                                _vocab_hint(handed.number(raw), s, per_token=False)))
        items.append(value_item(handed, per_token, s.per_token_mean_cos, TOL_VOCAB,
                                f"`{per_token}`: the same after subtracting each token's own mean over d_model", 0.5,
                                _vocab_hint(handed.number(per_token), s, per_token=True)))
    return [items[0], items[2], items[1], items[3]]


# --- Part 4: moving the mean into the positional embeddings -------------------------------------------


def _tensor_or_list(handed, name: str) -> Tensor | None:
    got = handed.tensor(name)
    if got is None and isinstance(handed.value(name), list):
        try:
            got = torch.tensor(handed.value(name), dtype=torch.float64)
        except (TypeError, ValueError):
            return None
    return got


def _moved_mean_judge(inputs, handed, embeddings):
    W = embeddings[GPT_NEO]
    before_item = Item("`logits_before`: the model's logits, `final_resid` times the tied unembedding W_Eᵀ", 0.5)
    after_item = Item("`logits_after`: with the mean moved into W_pos, every logit at a position moves by the same "
                      "−h·μ, so no probability changes", 1.0)
    shift_item = Item("`predicted_shift`: how far every logit at each position moves, −h·μ", 1.0)
    items = [before_item, after_item, shift_item]
    h = handed.tensor("final_resid")
    if h is None or h.dim() != 2 or h.shape[1] != W.shape[1] or h.shape[0] == 0 or not torch.isfinite(h).all() \
            or bool((h.double().norm(dim=-1) == 0).any()):
        message = _missing(handed, "final_resid", f"the [n_pos, {W.shape[1]}] final residual stream of one run, "
                           "with no zero row")
        for item in items:
            item.message = message
        return items
    before, after, shift = ref.moved_mean_logits(h, W)
    n_pos = h.shape[0]
    tolerance = TOL_LOGITS * float(before.abs().max())

    def same(got: Tensor | None, expected: Tensor) -> bool:
        return got is not None and got.numel() == expected.numel() and bool(
            torch.isfinite(got).all() and (got.double().reshape(expected.shape) - expected).abs().max() <= tolerance)

    got_before = handed.tensor("logits_before")
    if same(got_before, before):
        before_item.points = 0.5
    elif got_before is None:
        before_item.message = _missing(handed, "logits_before", f"a [{n_pos}, d_vocab] tensor")
    else:
        before_item.message = ("these are not `final_resid @ W_E.T`: take `final_resid` and `logits_before` from one "
                               "run of the model as loaded (final_resid_and_logits)")

    got_after = handed.tensor("logits_after")
    mu = W.double().mean(dim=0)
    if same(got_after, after):
        after_item.points = 1.0
    elif got_after is None:
        after_item.message = _missing(handed, "logits_after", f"a [{n_pos}, d_vocab] tensor")
    elif same(got_after, before):
        after_item.message = ("the logits did not move: the unembedding is W_E itself (tied), so running with "
                              "W_E − μ must shift them; run inside replaced_embeddings with the moved W_E and W_pos")
    elif same(got_after, before + (h.double() @ mu)[:, None]):
        after_item.message = "the sign is reversed: subtract the mean from W_E and add it to W_pos"
    elif got_after.numel() == before.numel() and not torch.allclose(
            got_after.double().reshape(before.shape).softmax(-1), before.softmax(-1), atol=1e-3):
        after_item.message = ("the next-token probabilities changed, so the residual stream did: add to every row of "
                              "W_pos the same mean you take from every row of W_E")
    else:
        after_item.message = "these are not the logits of the moved model: compare with final_resid @ (W_E − μ)ᵀ"

    got_shift = _tensor_or_list(handed, "predicted_shift")
    if got_shift is None:
        shift_item.message = _missing(handed, "predicted_shift", f"one number per position, [{n_pos}]")
    elif got_shift.numel() != n_pos:
        shift_item.message = f"`predicted_shift` should hold one number per position, [{n_pos}], not {got_shift.numel()}"
    elif same(got_shift, shift):
        shift_item.points = 1.0
    elif same(got_shift, -shift):
        shift_item.message = "the sign is reversed: with μ taken out of W_E, each logit h · W_E[v] drops by h · μ"
    elif same(got_shift, torch.zeros_like(shift)):
        shift_item.message = ("the logits do move: the unembedding is tied to W_E, so each logit h · W_E[v] changes "
                              "when W_E does")
    else:
        shift_item.message = "each logit is h · W_E[v]; what does it become when W_E[v] becomes W_E[v] − μ?"
    return items


CHECKS = [
    Check("test_normalize", 1.0, _normalize_inputs, _normalize_judge),
    Check("test_pairwise_cosine_sim", 1.0, lambda e: standard_inputs("pairwise_cosine_sim", e), _pairwise_judge),
    Check("test_reproduce", 1.0, no_inputs, _reproduce_judge),
    Check("test_diagnostic", 3.0, _diagnostic_inputs, _diagnostic_judge),
    Check("test_cosine_sim_with_mean", 1.0, lambda e: standard_inputs("cosine_sim_with_mean", e),
          _with_mean_judge),
    Check("test_center", 1.0, lambda e: standard_inputs("center", e), _center_judge),
    Check("test_evidence", 3.0, no_inputs, _evidence_judge),
    Check("test_mean_pairwise_cosine_sim", 2.5, _mean_inputs, _mean_judge),
    Check("test_whole_vocab", 2.0, no_inputs, _whole_vocab_judge),
    Check("test_moved_mean", 2.5, no_inputs, _moved_mean_judge),
]
