"""The checks at real scale: every corpus mistake is still caught, and every correct variant still
passes, when the judges run on full-size embeddings (moderately slow: a few minutes).

The tolerances in grader_tests/puzzle1/checks.py come from float32 error measured on 50257 × 768
matrices; the stand-ins the rest of the suite grades with are 8192 × 64. Here each submission of
the corpus (its mistakes, correct variants and demo students) runs in this process on seeded
50257 × 768 embeddings with a planted shared mean (mean pairwise cosine 0.90 like GPT-Neo, 0.30
like GPT-2; GPT-2 small's W_E has the same shape), its test cells restored from the source
notebook as nbgrader does, and each hand-in is judged by the check's own judge function. No
kernel and no sandbox: those are what tests/test_grading.py exercises, on the stand-ins.
"""

from __future__ import annotations

import contextlib
import io
import math

import nbformat
import pytest
import torch
import torch.nn.functional as F

from conftest import PUZZLE1
from interp_course import corpus, handin
from grader_tests.puzzle1.checks import GPT2, GPT_NEO
from interp_course.course import Course
from interp_course.judging import HandIn
from interp_course.judging.assignment import load_assignment
from interp_course.judging.judge import graded_test_cells

COURSE = Course()
SOURCE = nbformat.read(COURSE.source(PUZZLE1) / "puzzle1.ipynb", as_version=4)
ASSIGNMENT = load_assignment(COURSE, PUZZLE1)
CHECKS = ASSIGNMENT.checks
MAX_POINTS = {gid: float(SOURCE.cells[i].metadata["nbgrader"]["points"]) for i, gid in graded_test_cells(SOURCE)}
SUBMISSIONS = [s for s in corpus.load(COURSE, PUZZLE1).SUBMISSIONS if s.group in ("demo", "mistake", "correct")]
BUILT = corpus.build_all(COURSE, PUZZLE1)

N_VOCAB, D_MODEL = 50257, 768  # GPT-Neo-125M and GPT-2 small alike
_ABSENT = object()

# Where real scale legitimately scores differently from the 8192-token stand-ins.
AT_REAL_SCALE = {
    # Including the diagonal shifts GPT-Neo-like means by (1 - 0.9)/50257 = 2.0e-6, inside the
    # float tolerance (5e-6); GPT-2-like ones by 1.4e-5, caught. On the stand-ins both are caught.
    "mean-includes-diagonal": {"test_whole_vocab": 1.0},
    # With GPT-Neo-like geometry the mean of the normalized rows moves the median cosine with the
    # mean by 6e-7, inside the float tolerance (2e-6); on the stand-ins by 9e-6, caught.
    "with-mean-of-normalized": {"test_evidence": 3.0},
}
# Exercise 4.3 runs GPT-Neo itself, which this process does not have at real scale: its cells are
# skipped and its check is left out here (tests/test_moved_mean.py checks it on full-size stand-ins).
NEEDS_MODEL = {"moved_mean_setup", "moved_mean"}
COMPARED = {gid: points for gid, points in MAX_POINTS.items() if gid != "test_moved_mean"}
# Submissions this process cannot run safely: an n×n matrix of 200,000 rows is refused only by
# the grading sandbox's memory cap (tests/test_grading.py grades it for real).
NOT_IN_PROCESS = {"mean-via-nxn-matrix"}
# Cells that only display; they define nothing a graded cell reads.
DISPLAY_ONLY = {"random_baseline", "my_test", "plot_with_mean", "gpt2_look"}
# The slow cells (seconds each at this size) and the function cells they call: a slow cell's
# results are reused from an earlier submission when its source and theirs are the same. A
# submission with cells of its own (which could redefine anything) is run without reuse.
SLOW_CELLS = {
    "reproduce": ("normalize", "pairwise_cosine_sim"),
    "diagnostic": (),
    "evidence": ("normalize", "pairwise_cosine_sim", "cosine_sim_with_mean", "center"),
    "whole_vocab": ("normalize", "mean_pairwise_cosine_sim"),
}


def planted(n: int, d: int, mean_cos: float, seed: int) -> torch.Tensor:
    """Rows = scaleᵢ · (a·u + zᵢ): one shared direction u, isotropic noise, row norms varying by ~15%.

    With ‖zᵢ‖² ≈ σ²d the pairwise cosine is about a² / (a² + σ²d), so a is set for `mean_cos`.
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    sigma = 0.25
    a = sigma * math.sqrt(d * mean_cos / (1 - mean_cos))
    Z = sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
    scales = torch.exp(0.15 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    return (scales * (a * u + Z)).float()


@pytest.fixture(scope="module")
def embeddings() -> dict[str, torch.Tensor]:
    return {GPT_NEO: planted(N_VOCAB, D_MODEL, 0.90, 1), GPT2: planted(N_VOCAB, D_MODEL, 0.30, 2)}


def notebook_runner(embeddings: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch):
    """A function that runs a built submission in this process and returns each test cell's points.

    Cells run in order; test cells run as the grader restores them (hidden part included), and
    their hand-ins are judged by the checks on `embeddings`. A cell's error costs only what
    depends on it, as in grading.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the setup cell must not wait on the hub
    inputs = {gid: check.inputs(embeddings) for gid, check in CHECKS.items()}
    source_cells = {c.metadata["nbgrader"]["grade_id"]: c for c in SOURCE.cells}
    cache: dict[tuple, dict] = {}  # what a slow cell defined, by its source and its functions' sources

    def run(nb) -> dict[str, float]:
        namespace: dict = {"__name__": "__main__"}
        scores: dict[str, float] = {}

        def hand_in(grade_id: str, *names: str) -> None:
            objects = {name: namespace.get(name, handin.Missing) for name in names}
            cases = {key: handin.arguments(case) for key, case in inputs[grade_id].items()}
            tensors, report = handin.collect(objects, cases)
            verdict = CHECKS[grade_id].verdict(inputs[grade_id], HandIn(tensors=tensors, report=report), embeddings)
            scores[grade_id] = verdict.points

        monkeypatch.setattr(handin, "hand_in", hand_in)
        sources = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
        reuse = None not in sources
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.cell_type != "code" or gid in DISPLAY_ONLY | NEEDS_MODEL or gid == "load_models":
                continue
            if gid == "test_moved_mean":
                continue
            if gid in MAX_POINTS:  # a test cell: the grader restores it, hidden part included
                cell = source_cells[gid]
            key = (gid, cell.source, *(sources[f] for f in SLOW_CELLS.get(gid, ())))
            if reuse and key in cache:
                namespace.update(cache[key])
                continue
            before = dict(namespace)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(cell.source, f"<{gid or 'extra cell'}>", "exec"), namespace)
            except Exception:  # noqa: BLE001 - a student's error costs only what depends on it
                pass
            if gid == "setup":
                namespace["plot_histogram"] = namespace["plot_line"] = lambda *args, **kwargs: None
                namespace["W_E_neo"], namespace["W_E_gpt2"] = embeddings[GPT_NEO], embeddings[GPT2]
            if gid in SLOW_CELLS:
                cache[key] = {k: v for k, v in namespace.items() if before.get(k, _ABSENT) is not v}
        return scores

    return run


@pytest.fixture(scope="module")
def run_notebook(embeddings):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield notebook_runner(embeddings, monkeypatch)


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=[s.name for s in SUBMISSIONS])
def test_corpus_scores_at_real_scale(run_notebook, submission):
    if submission.name in NOT_IN_PROCESS:
        pytest.skip("needs the grading sandbox's memory cap")
    expected = {gid: points for gid, points in submission.expected_scores(MAX_POINTS).items() if gid in COMPARED}
    expected.update(AT_REAL_SCALE.get(submission.name, {}))
    got = run_notebook(BUILT[submission.name])
    assert {gid: got.get(gid, 0.0) for gid in COMPARED} == expected, submission.about


def judge(grade_id: str, values: dict, embeddings) -> float:
    """Points for a test cell whose hand-in is just these values (the student's variables)."""
    tensors, report = handin.collect(values, {})
    return CHECKS[grade_id].verdict({}, HandIn(tensors=tensors, report=report), embeddings).points


def gemv_mean_cos(W: torch.Tensor) -> torch.Tensor:
    """The exact mean with the sum over tokens done by a BLAS matrix-vector product: the largest
    float32 error of the implementations measured (5.7e-7 at 0.9)."""
    n = len(W)
    return ((torch.ones(n, dtype=W.dtype) @ F.normalize(W, dim=-1)).square().sum() - n) / (n * (n - 1))


def judge_with_inputs(grade_id: str, values: dict, embeddings) -> float:
    """Points for a test cell whose hand-in holds these values and functions, run on the check's inputs."""
    inputs = CHECKS[grade_id].inputs(embeddings)
    tensors, report = handin.collect(values, {key: handin.arguments(case) for key, case in inputs.items()})
    return CHECKS[grade_id].verdict(inputs, HandIn(tensors=tensors, report=report), embeddings).points


def test_the_least_accurate_legitimate_float32_implementations_pass(embeddings):
    neo, gpt2 = embeddings[GPT_NEO], embeddings[GPT2]
    d = neo.shape[1]
    assert judge("test_whole_vocab", {
        "neo_mean_cos_exact": gemv_mean_cos(neo), "gpt2_mean_cos_exact": gemv_mean_cos(gpt2),
        "neo_per_token_centered_mean_cos": gemv_mean_cos(F.layer_norm(neo, (d,))),
        "gpt2_per_token_centered_mean_cos": gemv_mean_cos(F.layer_norm(gpt2, (d,))),
    }, embeddings) == 2.0
    # Each diagnostic the least accurate way tried: a randomized SVD, ‖W‖² as torch's float32 norm of
    # the whole matrix (0.27% low at this size), column norms, numpy's median convention.
    least_accurate = {
        "top_share": lambda W: (torch.linalg.svdvals(W)[0] ** 2 / W.norm() ** 2).item(),
        "pca_top_share": lambda W: (torch.linalg.svdvals(W - W.mean(dim=0))[0] ** 2 / (W - W.mean(dim=0)).norm() ** 2).item(),
        "top_coordinate_share": lambda W: (W.norm(dim=0).max() ** 2 / W.norm() ** 2).item(),
        "mean_to_token_norm": lambda W: ((torch.ones(1, len(W), dtype=W.dtype) @ W / len(W)).norm() / W.norm(dim=-1).quantile(0.5)).item(),
        "median_cos_with_mean": lambda W: F.cosine_similarity(W, W.mean(dim=0, keepdim=True), dim=-1).quantile(0.5).item(),
    }
    randomized = {"top_share": lambda W: (torch.pca_lowrank(W, q=6, center=False, niter=2)[1][0] ** 2
                                          / W.norm() ** 2).item()}
    for name, diagnostic_fn in least_accurate.items():
        value = randomized.get(name, diagnostic_fn)(neo)
        points = judge_with_inputs("test_diagnostic", {"diagnostic": name, "diagnostic_fn": diagnostic_fn,
                                                       "diagnostic_value": value}, embeddings)
        assert points == 3.0, name
    mean = torch.ones(1, len(neo)) @ neo / len(neo)
    sub = neo[torch.randperm(N_VOCAB, generator=torch.Generator().manual_seed(0))[:5000]]
    assert judge("test_evidence", {
        "mean_direction": mean,
        "mean_to_token_norm": mean.norm() / neo.norm(dim=-1).quantile(0.5),
        "median_cos_with_mean": F.cosine_similarity(neo, mean, dim=-1).quantile(0.5),
        "neo_centered_mean_cos": gemv_mean_cos(sub - sub.mean(dim=0)),
    }, embeddings) == 3.0
    assert judge("test_reproduce", {"neo_mean_cos": gemv_mean_cos(sub)}, embeddings) == 1.0


def test_numbers_not_computed_from_W_E_earn_nothing_at_real_scale(embeddings):
    """The puzzle's own 0.9, or 0 for the centred mean, land outside the float tolerances."""
    assert judge("test_reproduce", {"neo_mean_cos": 0.9}, embeddings) == 0.0
    neo = embeddings[GPT_NEO]
    mean = neo.mean(dim=0)
    right = {"mean_direction": mean, "mean_to_token_norm": mean.norm() / neo.norm(dim=-1).median(),
             "median_cos_with_mean": F.cosine_similarity(neo, mean[None], dim=-1).median()}
    assert judge("test_evidence", {**right, "neo_centered_mean_cos": 0.0}, embeddings) == 2.0


def test_whole_vocabulary_mistakes_at_real_scale(embeddings):
    neo, gpt2 = embeddings[GPT_NEO], embeddings[GPT2]
    subset = torch.randperm(N_VOCAB, generator=torch.Generator().manual_seed(0))[:5000]
    exact = {name: float(gemv_mean_cos(W.double())) for name, W in (("neo", neo), ("gpt2", gpt2))}
    right = {"neo_per_token_centered_mean_cos": gemv_mean_cos(neo - neo.mean(dim=-1, keepdim=True)),
             "gpt2_per_token_centered_mean_cos": gemv_mean_cos(gpt2 - gpt2.mean(dim=-1, keepdim=True))}
    on_subset = {"neo_mean_cos_exact": gemv_mean_cos(neo[subset]), "gpt2_mean_cos_exact": gemv_mean_cos(gpt2[subset])}
    assert judge("test_whole_vocab", {**right, **on_subset}, embeddings) == 1.0
    with_diagonal = {f"{m}_mean_cos_exact": exact[m] + (1 - exact[m]) / N_VOCAB for m in exact}
    # GPT-2-like (m = 0.3): 1.4e-5 off, caught; GPT-Neo-like (m = 0.9): 2.0e-6, within float error.
    assert judge("test_whole_vocab", {**right, **with_diagonal}, embeddings) == 1.5
