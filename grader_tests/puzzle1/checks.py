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
singular direction, raw or        pca_lowrank (randomized)             CPU ≤ 6.2e-7)        5e-4
centred (PCA)
1 − |cos| for directions (mean;   mean(0), sum(0), ones @ W; Vh[0],    1.1e-11 (CUDA svd)   TOL_DIRECTION
top singular vector)              eigh, pca_lowrank                                         1e-10 (1.4e-5 rad)
token norms, relative             norm, square-sum-sqrt, vector_norm   1.7e-7               RTOL_NORMS 1e-6
median cosine with the mean       reference, F.cosine_similarity;      3.1e-7 (largest      TOL_MEDIAN_COS
                                  the mean by mean(0) or ones @ W / n  error of any token)  2e-6
|mean| / median token norm        median, quantile(0.5); the mean by   3.1e-7 (gemv mean;   TOL_RATIO 2e-6
                                  mean(0), sum(0) / n, ones @ W / n    mean(0): 2.6e-8)
================================  ===================================  ===================  ===========

For scale: float32's own spacing at 0.9 is 6e-8, and the reference algorithm's error on a whole
vocabulary (2.4e-8 at 0.9, 4.2e-8 at 0.3 on CPU) is that rounding. A median over an even number
of tokens (the 8192-token stand-ins) is accepted anywhere between the two middle values, so
torch.median and the numpy/quantile convention both pass.

What the tolerances then catch at real scale (tests/test_real_scale.py judges the corpus on such
matrices): the 5000-token subset instead of the whole vocabulary is off by 2e-5 to 9e-5 in the
mean cosine (GPT-Neo-like) and 1e-4 to 4e-4 (GPT-2-like), over 8 random subsets; per-token instead of vocabulary
centring by ~0.9; the mean of the normalized rows instead of the mean points 2.7e-8 (0.90) to
5e-7 (0.30) away in 1 − cos; PCA's share instead of the raw one by ~0.7. Including the diagonal
shifts an exact mean by (1 − m)/n: 1.4e-5 for a GPT-2-like vocabulary (caught) and 4.0e-6 on the
200,000-row input (caught), but only 2.0e-6 for a GPT-Neo-like one (m = 0.9): inside TOL_VOCAB,
and within 4× of what a BLAS-summed float32 implementation legitimately gets wrong, so that one
item cannot tell it apart; the mistake is caught by the other two. (On the 8192-token stand-ins
the shift is 1.2e-5 for GPT-Neo and 8.5e-5 for GPT-2, both caught.)

Function values on the grader's inputs (≤ 256 rows of d_model ≤ 768, or small random matrices)
are compared with ``atol = rtol = 1e-4``: at least 50× the float32 error measured for these
functions at real scale (normalize 2.7e-8, pairwise cosines 5.8e-7 on CPU and 2.0e-6 on CUDA,
cosines with the mean 4.2e-7, centred rows 5.3e-8 of the largest entry), and wide enough for
TF32 matmuls (pairwise cosines off by 9.4e-5 on the H200, within atol + rtol·|x|), F.normalize's
eps and float64 or float32 casts inside the student's code; every function mistake in the
corpus is off by more than 1e-2.

Numbers the student estimates on the 5000-token subset (``neo_mean_cos``,
``neo_centered_mean_cos``) are compared with the whole vocabulary at ``TOL_SUBSET = 0.02``: a
sampling tolerance, 10× the largest subset deviation measured (2e-3 on the stand-ins; 9.3e-5 and
2.8e-4 at real scale over 8 random subsets).
"""

from __future__ import annotations

import math
from functools import cached_property

import torch

import solutions.puzzle1 as ref
from interp_course.course import GPT2, GPT_NEO
from interp_course.judging import (Check, Diagnosis, Item, close, diagnose, how_far, judge_function, no_inputs,
                                   reference_result, value_item)

ATOL = RTOL = 1e-4
TOL_VOCAB = 5e-6  # exact mean pairwise cosine over a whole vocabulary
TOL_BIG = 1e-6  # exact mean pairwise cosine of the BIG_N × BIG_D input
TOL_SHARE = 5e-4  # share of ‖W‖_F² along a singular direction
TOL_DIRECTION = 1e-10  # 1 − cos between directions (an angle of 1.4e-5 rad)
RTOL_NORMS = 1e-6  # token norms, relative
TOL_MEDIAN_COS = 2e-6  # median cosine with the mean, outside the two middle values
TOL_RATIO = 2e-6  # |mean| / median norm, outside the two middle values
TOL_SUBSET = 0.02  # 5000-token estimates against the whole vocabulary (sampling)

SEED = 1234
W_E_ROWS = 256  # rows of each real W_E handed to the student's functions
# Bigger than any vocabulary here: its n×n matrix (149 GiB) cannot be allocated on any grading
# machine, so only an O(n·d) method passes, with or without the sandbox's memory cap.
BIG_N, BIG_D = 200_000, 8

MODELS = (GPT_NEO, GPT2)  # the grader loads W_E of each and passes them as `embeddings`

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# Inputs


def _generator(offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + offset)


def _embedding_rows(W: Tensor, offset: int) -> Tensor:
    rows = torch.randperm(W.shape[0], generator=_generator(offset))[:W_E_ROWS]
    return W[rows].clone()


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


# ---------------------------------------------------------------------------------------------
# The grader's own numbers for a whole W_E, computed once per embedding matrix (float64)


def _middle(sorted_values: Tensor) -> tuple[float, float]:
    """The two middle values (equal for an odd count): any median convention lies between them."""
    n = len(sorted_values)
    return float(sorted_values[(n - 1) // 2]), float(sorted_values[n // 2])


def _spectrum(X: Tensor) -> tuple[Tensor, Tensor]:
    """Squared singular values (descending) and right singular vectors (columns), via XᵀX in float64."""
    values, vectors = torch.linalg.eigh(X.T @ X)
    return values.flip(0).clamp_min(0), vectors.flip(1)


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
    def centered_mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.X - self.mean))

    @cached_property
    def per_token(self) -> Tensor:
        return self.X - self.X.mean(dim=-1, keepdim=True)

    @cached_property
    def per_token_mean_cos(self) -> float:
        return float(ref.mean_pairwise_cosine_sim(self.per_token))

    @cached_property
    def spectrum(self) -> tuple[Tensor, Tensor]:
        return _spectrum(self.X)

    @property
    def top_share(self) -> float:
        squares = self.spectrum[0]
        return float(squares[0] / squares.sum())

    @property
    def sqrt_top_share(self) -> float:  # σ₁ / Σσ, a mistake
        singular = self.spectrum[0].sqrt()
        return float(singular[0] / singular.sum())

    @property
    def top_direction(self) -> Tensor:
        return self.spectrum[1][:, 0]

    @cached_property
    def pca_top_share(self) -> float:
        squares = _spectrum(self.X - self.mean)[0]
        return float(squares[0] / squares.sum())

    @cached_property
    def per_token_pca_share(self) -> float:  # per-token instead of per-coordinate centring, a mistake
        squares = _spectrum(self.per_token)[0]
        return float(squares[0] / squares.sum())


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


def _judge(name, inputs, handed, reference, diagnoses, value_points, contract_points, cases=None):
    return judge_function(name, inputs, handed, reference, diagnoses, value_points, contract_points,
                          atol=ATOL, rtol=RTOL, cases=cases)


def _missing(handed, name: str, wanted: str) -> str:
    kind = handed.kind(name)
    if kind == "missing":
        return f"`{name}` is not defined: did the cell that computes it run without errors?"
    return f"`{name}` should be {wanted} (got {kind})"


def _near(got: float, value: float, tolerance: float) -> bool:
    return abs(got - value) <= tolerance


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
    items = _judge("normalize", inputs, handed, ref.normalize, NORMALIZE_BUGS, 1.0, 0.5,
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
    return _judge("pairwise_cosine_sim", inputs, handed, ref.pairwise_cosine_sim, PAIRWISE_BUGS, 1.5, 0.5)


def _center_judge(inputs, handed, embeddings):
    return _judge("center", inputs, handed, ref.center, CENTER_BUGS, 1.5, 0.5)


def _with_mean_judge(inputs, handed, embeddings):
    return _judge("cosine_sim_with_mean", inputs, handed, ref.cosine_sim_with_mean, WITH_MEAN_BUGS, 1.5, 0.5)


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
                              MEAN_BUGS, 1.0, 0.5, cases=small)
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


def _reproduce_judge(inputs, handed, embeddings):
    s = stats(embeddings[GPT_NEO])
    return [value_item(handed, "neo_mean_cos", s.mean_cos, TOL_SUBSET,
                       "`neo_mean_cos`: mean pairwise cosine of GPT-Neo's embeddings (reproduces the puzzle)", 1.0,
                       "average the off-diagonal entries of pairwise_cosine_sim(W_E_sub)")]


# --- Part 3: the investigation --------------------------------------------------------------------


def _share_hint(got: float | None, s: Stats, centred: bool) -> str:
    if got is None:
        return ""
    if centred and _near(got, s.top_share, TOL_SHARE):
        return "that is the share for W_E as it is; PCA first subtracts each coordinate's mean over tokens (W - W.mean(dim=0))"
    if centred and _near(got, s.per_token_pca_share, TOL_SHARE):
        return "you subtracted each token's own mean (dim=-1); PCA subtracts each coordinate's mean over tokens (dim=0)"
    if not centred and _near(got, s.pca_top_share, TOL_SHARE):
        return "that is the share after centring (PCA's); top_share is for W_E as it is"
    if not centred and _near(got, s.sqrt_top_share, TOL_SHARE):
        return "square the singular values: the share of ‖W‖² is σ₁² / Σσ², not σ₁ / Σσ"
    return "use an exact SVD of the whole W_E_neo (torch.linalg.svdvals) and σ₁² / Σσ²"


def _investigation_judge(inputs, handed, embeddings):
    W = embeddings[GPT_NEO]
    s = stats(W)
    norms = Item("`token_norms`: the L2 norm of every row of GPT-Neo's W_E", 0.5)
    got = handed.tensor("token_norms")
    if got is None:
        norms.message = _missing(handed, "token_norms", "a [d_vocab] tensor")
    elif got.numel() != s.n:
        norms.message = (f"`token_norms` has {got.numel()} entries but W_E has {s.n} rows: "
                         "take the norm of each row, over the last dimension (dim=-1)")
    elif torch.allclose(got.flatten().double(), s.norms, rtol=RTOL_NORMS, atol=0):
        norms.points = 0.5
    elif torch.allclose(got.flatten().double(), s.norms.square(), rtol=RTOL_NORMS, atol=0):
        norms.message = "these are squared norms: take the square root (W_E_neo.norm(dim=-1))"
    else:
        norms.message = "the values differ from W_E_neo.norm(dim=-1)"

    top = handed.number("top_share")
    pca = handed.number("pca_top_share")
    top_item = value_item(handed, "top_share", s.top_share, TOL_SHARE,
                          "`top_share`: share of ‖W_E‖² along the top singular direction", 0.5,
                          _share_hint(top, s, centred=False))
    pca_item = value_item(handed, "pca_top_share", s.pca_top_share, TOL_SHARE,
                          "`pca_top_share`: share of the variance along the first principal component", 0.5,
                          _share_hint(pca, s, centred=True))

    direction = Item("`top_direction`: the first right singular vector of GPT-Neo's W_E", 0.5)
    got = handed.tensor("top_direction")
    d = s.top_direction.numel()
    if got is None or not torch.isfinite(got).all() or got.numel() == 0 or got.double().norm() == 0:
        direction.message = _missing(handed, "top_direction", "a non-zero [d_model] tensor")
    elif got.numel() != d:
        direction.message = (f"`top_direction` has {got.numel()} entries, not d_model = {d}: "
                             + ("that is a left singular vector (a column of U); " if got.numel() == s.n else "")
                             + "the right singular vectors are the rows of Vh (Vh[0])")
    else:
        cos = torch.nn.functional.cosine_similarity(got.flatten().double(), s.top_direction, dim=0).abs().item()
        if 1 - cos <= TOL_DIRECTION:
            direction.points = 0.5
        else:
            direction.message = (f"its |cosine| with the top right singular vector of W_E_neo as it is is {cos:.6f}: "
                                 "take Vh[0] from torch.linalg.svd(W_E_neo) (the right singular vectors are the "
                                 "rows of Vh, not its columns)")
    return [norms, top_item, direction, pca_item]


CAUSE_ANSWER = "C"


def _cause_judge(inputs, handed, embeddings):
    item = Item("`cause`: the multiple-choice answer", 1.0)
    answer = handed.string("cause")
    if answer is None:
        item.message = "set `cause` to one of the letters as a string, e.g. cause = \"A\""
    elif answer.strip().strip("\"'()").upper() == CAUSE_ANSWER:
        item.points = 1.0
    else:
        item.message = ("not that one: which of your numbers from Exercise 3.1 would that explanation predict, "
                        "and what happened when you centred the embeddings?")
    return [item]


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
                    "`median_cos_with_mean`: median cosine of a token with the mean embedding", 0.5,
                    "take the median of cosine_sim_with_mean(W_E_neo), over all tokens"),
        value_item(handed, "neo_centered_mean_cos", s.centered_mean_cos, TOL_SUBSET,
                   "`neo_centered_mean_cos`: mean pairwise cosine after subtracting the mean embedding", 0.5,
                   "center W_E_sub with your center() first, then average the off-diagonal cosines"),
    ]


# --- Part 4: the whole vocabulary ------------------------------------------------------------------


def _vocab_hint(got: float | None, s: Stats, per_token: bool) -> str:
    expected = s.per_token_mean_cos if per_token else s.mean_cos
    if got is not None and _near(got, expected + (1 - expected) / s.n, TOL_VOCAB / 2):
        return "it includes the diagonal (every token with itself): average over pairs i ≠ j"
    if per_token and got is not None and _near(got, s.centered_mean_cos, 1e-3):
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


CHECKS = [
    Check("test_normalize", 2.0, _normalize_inputs, _normalize_judge),
    Check("test_pairwise_cosine_sim", 2.0, lambda e: standard_inputs("pairwise_cosine_sim", e), _pairwise_judge),
    Check("test_reproduce", 1.0, no_inputs, _reproduce_judge),
    Check("test_investigation", 2.0, no_inputs, _investigation_judge),
    Check("test_cause", 1.0, no_inputs, _cause_judge),
    Check("test_cosine_sim_with_mean", 2.0, lambda e: standard_inputs("cosine_sim_with_mean", e),
          _with_mean_judge),
    Check("test_center", 2.0, lambda e: standard_inputs("center", e), _center_judge),
    Check("test_evidence", 2.0, no_inputs, _evidence_judge),
    Check("test_mean_pairwise_cosine_sim", 2.0, _mean_inputs, _mean_judge),
    Check("test_whole_vocab", 2.0, no_inputs, _whole_vocab_judge),
]
