"""The hidden checks of Puzzle 1, one per graded test cell of the notebook (keyed by grade_id).

Each check has two halves, both run by the grader in a clean process (see
``interp_course.judging.Check``):
- ``inputs(embeddings)`` picks the inputs the student's functions are called on (seeded);
- ``judge(inputs, handed, embeddings)`` turns what the student's kernel handed back into
  itemised points, each with a message that names the likely mistake.

``embeddings`` maps each model id in ``MODELS`` to its W_E. Judges are pure functions of
(inputs, hand-in, embeddings): they never see the student's objects, only tensors and plain data,
so nothing the student's code patches can reach them.

Tolerances. Student results are compared with the reference in float64 with
``atol = rtol = 1e-4``. Inputs are float32 with d_model ≤ 768: a norm or dot product sums ≤ 768
products, whose rounding error is at worst ~768 · 6e-8 ≈ 5e-5 of the result's scale and
typically ~√768 · 6e-8 ≈ 2e-6; float64 inputs, a float32 cast inside the student's code,
F.normalize's eps and CUDA's default (non-TF32) matmuls all stay well inside 1e-4, while every
mistake in the corpus is off by more than 1e-2.
"""

from __future__ import annotations

import torch

import solutions.puzzle1 as ref
from interp_course.course import GPT2, GPT_NEO
from interp_course.judging import Check, Diagnosis, Item, close, diagnose, judge_function, no_inputs, value_item

ATOL = RTOL = 1e-4
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
# The checks


def _close(student, expected) -> bool:
    return close(student, expected, ATOL, RTOL)


def _diagnose(x: Tensor, student, error: str, diagnoses: list[Diagnosis]) -> str:
    return diagnose((x,), student, error, diagnoses, ATOL, RTOL)


def _judge(name, inputs, handed, reference, diagnoses, value_points, contract_points, cases=None):
    return judge_function(name, inputs, handed, reference, diagnoses, value_points, contract_points,
                          atol=ATOL, rtol=RTOL, cases=cases)


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


# --- the exact mean over the whole vocabulary ---------------------------------------------------

MEAN_BUGS: list[Diagnosis] = [
    (lambda W: ref.pairwise_cosine_sim(W).mean(),
     "you included the diagonal (every token with itself, cosine 1): average over pairs i ≠ j"),
    (lambda W: (ref.normalize(W).sum(0).square().sum() - W.shape[0]) / W.shape[0] ** 2,
     "there are n(n−1) ordered pairs with i ≠ j, not n²"),
    (lambda W: (W.sum(0).square().sum() - W.square().sum()) / (W.shape[0] * (W.shape[0] - 1)),
     "these are dot products: normalize the rows first"),
]


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
    big = Item(f"mean_pairwise_cosine_sim handles {BIG_N:,} tokens in O(n·d) memory", 0.5)
    if _close(handed.tensor(key), ref.mean_pairwise_cosine_sim(inputs[key])):
        big.points = 0.5
    else:
        error = handed.error(key)
        big.message = (
            (f"it raised {error.splitlines()[0][:160]}; " if error else "")
            + f"an n×n matrix for {BIG_N} tokens needs {BIG_N**2 * 4 / 2**30:.0f} GiB: use the identity "
            "mean = (‖Σᵢ x̂ᵢ‖² − n) / (n(n−1)), which never builds it"
        )
    return [values, contract, big]


# --- the evidence behind the explanation --------------------------------------------------------


def _evidence_judge(inputs, handed, embeddings):
    W = embeddings[GPT_NEO]
    mean = W.mean(dim=0)
    # A random subset of 5000 tokens estimates these means to ~1e-3; 0.02 leaves room for any seed.
    items = [
        value_item(handed, "neo_mean_cos", ref.mean_pairwise_cosine_sim(W).item(), 0.02,
                    "`neo_mean_cos`: mean pairwise cosine of GPT-Neo's embeddings (reproduces the puzzle)", 0.5,
                    "average the off-diagonal entries of pairwise_cosine_sim(W_E_sub)"),
        value_item(handed, "mean_to_token_norm", (mean.norm() / W.norm(dim=-1).median()).item(), 0.05,
                    "`mean_to_token_norm`: norm of the mean embedding / median token norm", 0.5,
                    "divide W_E.mean(0).norm() by the median of W_E.norm(dim=-1)"),
        value_item(handed, "neo_centered_mean_cos", ref.mean_pairwise_cosine_sim(ref.center(W)).item(), 0.02,
                    "`neo_centered_mean_cos`: mean pairwise cosine after subtracting the mean embedding", 0.5,
                    "center W_E_sub with your center() first, then average the off-diagonal cosines"),
    ]
    direction = Item("`mean_direction` points along GPT-Neo's mean embedding", 0.5)
    got = handed.tensor("mean_direction")
    if got is None or got.numel() != mean.numel() or not torch.isfinite(got).all() or got.norm() == 0:
        direction.message = f"`mean_direction` should be a d_model-sized vector (got {handed.kind('mean_direction')})"
    else:
        cos = torch.nn.functional.cosine_similarity(got.flatten().double(), mean.double(), dim=0).item()
        if cos >= 0.99:
            direction.points = 0.5
        else:
            direction.message = f"its cosine with the mean embedding is {cos:.3f}; use W_E.mean(dim=0)"
    return items[:2] + [direction] + items[2:]


CAUSE_ANSWER = "B"


def _cause_judge(inputs, handed, embeddings):
    item = Item("`cause`: the multiple-choice answer", 1.0)
    answer = handed.string("cause")
    if answer is None:
        item.message = "set `cause` to one of the letters as a string, e.g. cause = \"A\""
    elif answer.strip().strip("\"'()").upper() == CAUSE_ANSWER:
        item.points = 1.0
    else:
        item.message = ("not that one: which single change to W_E makes the high similarity disappear, "
                        "and what does that tell you about the origin?")
    return [item]


def _bonus_judge(inputs, handed, embeddings):
    neo, gpt2 = embeddings[GPT_NEO], embeddings[GPT2]
    # Exact whole-vocabulary values: float32 sums of ≤ 50k unit vectors are good to ~1e-6, while
    # 5000-token subsets miss by 1e-4 to 2e-3 (measured on the stand-ins), so 3e-5 separates
    # "the whole vocabulary" from "the subset".
    subset_hint = "compute it on the whole W_E (all tokens), not the 5000-token subset"
    per_token = neo - neo.mean(dim=-1, keepdim=True)
    return [
        value_item(handed, "neo_mean_cos_exact", ref.mean_pairwise_cosine_sim(neo).item(), 3e-5,
                    "`neo_mean_cos_exact`: exact mean pairwise cosine over GPT-Neo's whole vocabulary", 0.5,
                    subset_hint),
        value_item(handed, "gpt2_mean_cos_exact", ref.mean_pairwise_cosine_sim(gpt2).item(), 3e-5,
                    "`gpt2_mean_cos_exact`: the same for GPT-2 small", 0.5, subset_hint),
        value_item(handed, "neo_per_token_centered_mean_cos", ref.mean_pairwise_cosine_sim(per_token).item(), 2e-3,
                    "`neo_per_token_centered_mean_cos`: after subtracting each token's own mean (LayerNorm-style)",
                    1.0, "subtract W_E.mean(dim=-1, keepdim=True) from the whole W_E, then use your exact mean"),
    ]


CHECKS = [
    Check("test_normalize", 2.0, _normalize_inputs, _normalize_judge),
    Check("test_pairwise_cosine_sim", 2.0, lambda e: standard_inputs("pairwise_cosine_sim", e), _pairwise_judge),
    Check("test_cosine_sim_with_mean", 2.0, lambda e: standard_inputs("cosine_sim_with_mean", e),
          _with_mean_judge),
    Check("test_center", 2.0, lambda e: standard_inputs("center", e), _center_judge),
    Check("test_evidence", 2.0, no_inputs, _evidence_judge),
    Check("test_cause", 1.0, no_inputs, _cause_judge),
    Check("test_mean_pairwise_cosine_sim", 2.0, _mean_inputs, _mean_judge),
    Check("test_bonus_evidence", 2.0, no_inputs, _bonus_judge),
]
