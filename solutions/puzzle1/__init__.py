"""Reference implementations for Puzzle 1 (embedding cosine similarity).

The student's notebook defines functions with the same names and contract; the grader runs
these in a clean process to decide what the right answers are. Contract for every function:
``W`` is a 2-D tensor ``[n_tokens, d_model]``; the result is a new tensor and ``W`` is never
modified.
"""

import torch

# A row whose norm is below this counts as zero; dividing by EPS instead of 0 keeps it at 0
# rather than NaN. Embedding norms are O(1), so this never touches a real token.
EPS = 1e-12


def normalize(W: torch.Tensor) -> torch.Tensor:
    """Each row scaled to unit L2 norm; a zero row stays zero."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(EPS)


def pairwise_cosine_sim(W: torch.Tensor) -> torch.Tensor:
    """[n, n] matrix of cosine similarities between rows."""
    W_normed = normalize(W)
    return W_normed @ W_normed.T


def center(W: torch.Tensor) -> torch.Tensor:
    """W minus its mean over tokens (the vocabulary-mean row), not the per-token mean."""
    return W - W.mean(dim=0, keepdim=True)


def cosine_sim_with_mean(W: torch.Tensor) -> torch.Tensor:
    """[n] cosine similarity of each row with the mean row."""
    mean_direction = normalize(W.mean(dim=0, keepdim=True))
    return (normalize(W) @ mean_direction.T).squeeze(-1)


def mean_pairwise_cosine_sim(W: torch.Tensor) -> torch.Tensor:
    """Exact mean of cos(x_i, x_j) over all ordered pairs i != j, in O(n * d) memory and time.

    sum_{i,j} cos(x_i, x_j) = ||sum_i x̂_i||^2 and the diagonal contributes n, so the
    off-diagonal mean is (||sum_i x̂_i||^2 - n) / (n (n - 1)). Zero rows are counted as pairs
    with cosine 0 (they add 0 to the sum and 1 to neither term's diagonal).
    """
    n = W.shape[0]
    W_normed = normalize(W)
    total = W_normed.sum(dim=0).square().sum()
    diagonal = W_normed.square().sum()  # n, minus one for each zero row
    return (total - diagonal) / (n * (n - 1))


# --- Exercise 3.1: the diagnostics a student may choose (each one number for a matrix, in float64) ---


def _top_squared_share(X: torch.Tensor) -> float:
    """σ₁² / Σσ²: the share of ‖X‖_F² along the top singular direction (eigenvalues of XᵀX)."""
    squares = torch.linalg.eigvalsh(X.T @ X).clamp_min(0)
    return float(squares[-1] / squares.sum())


def top_share(W: torch.Tensor) -> float:
    """Share of ‖W‖_F² along the top singular direction of W as it is."""
    return _top_squared_share(W.double())


def pca_top_share(W: torch.Tensor) -> float:
    """Share of the variance along the first principal component (each coordinate's mean over rows
    subtracted first)."""
    X = W.double()
    return _top_squared_share(X - X.mean(dim=0))


def top_coordinate_share(W: torch.Tensor) -> float:
    """Share of ‖W‖_F² held by the largest single coordinate (column)."""
    per_coordinate = W.double().square().sum(dim=0)
    return float(per_coordinate.max() / per_coordinate.sum())


def mean_to_token_norm(W: torch.Tensor) -> float:
    """‖mean row‖ / median row norm (for an even number of rows: torch's lower middle value)."""
    X = W.double()
    return float(X.mean(dim=0).norm() / X.norm(dim=-1).median())


def median_cos_with_mean(W: torch.Tensor) -> float:
    """Median over rows of the cosine with the mean row (for an even count: the lower middle value)."""
    return float(cosine_sim_with_mean(W.double()).median())


DIAGNOSTICS = {
    "top_share": top_share,
    "pca_top_share": pca_top_share,
    "top_coordinate_share": top_coordinate_share,
    "mean_to_token_norm": mean_to_token_norm,
    "median_cos_with_mean": median_cos_with_mean,
}


# --- Exercise 4.3: moving the mean embedding into the positional embeddings ---------------------


def moved_mean_logits(final_resid: torch.Tensor, W_E: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What tied logits are before and after W_E -> W_E - mu, W_pos -> W_pos + mu, and the shift.

    The residual stream W_E[t] + W_pos[p] is unchanged by the move, so every activation is, and the
    final residual stream h is too. With the unembedding tied to W_E the logit of token v is
    h · W_E[v]; after the move it is h · (W_E[v] - mu) = h · W_E[v] - h · mu: at each position every
    logit drops by the same h · mu, which softmax ignores. Returns (before [n_pos, d_vocab], after
    [n_pos, d_vocab], shift [n_pos]), in float64.
    """
    h, X = final_resid.double(), W_E.double()
    mu = X.mean(dim=0)
    before = h @ X.T
    shift = -(h @ mu)
    return before, before + shift[:, None], shift


__all__ = [
    "normalize",
    "pairwise_cosine_sim",
    "center",
    "cosine_sim_with_mean",
    "mean_pairwise_cosine_sim",
    "DIAGNOSTICS",
    "moved_mean_logits",
]
