"""Reference solution of the example assignment `vectors`."""

import math


def cosine(x: list[float], y: list[float]) -> float:
    """Cosine similarity of two equal-length vectors of numbers."""
    dot = sum(a * b for a, b in zip(x, y))
    return dot / (math.sqrt(sum(a * a for a in x)) * math.sqrt(sum(b * b for b in y)))
