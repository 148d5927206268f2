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


__all__ = [
    "normalize",
    "pairwise_cosine_sim",
    "center",
    "cosine_sim_with_mean",
    "mean_pairwise_cosine_sim",
]
