"""Hidden checks of the example assignment: one function of two list arguments returning a float.

No models (no MODELS): the grader loads nothing, and the sandbox sees no model cache.
"""

from interp_course.judging import Check, judge_function
from solutions.vectors import cosine

CASES = {
    "cosine/orthogonal": ([1.0, 0.0], [0.0, 1.0]),
    "cosine/parallel": ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
    "cosine/opposite": ([1.0, -1.0], [-3.0, 3.0]),
    "cosine/general": ([3.0, -1.0, 2.0], [0.5, 4.0, -2.0]),
}

DIAGNOSES = [
    (lambda x, y: sum(a * b for a, b in zip(x, y)), "this is the dot product: divide by both norms"),
]


def _judge(inputs, handed, context):
    return judge_function("cosine", inputs, handed, cosine, DIAGNOSES, 2.0, 1.0, atol=1e-9, rtol=1e-9,
                          returns="number")


CHECKS = [Check("test_cosine", 3.0, lambda context: dict(CASES), _judge)]
