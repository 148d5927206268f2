"""The example assignment's corpus: a right, a wrong and a crashing submission."""

from interp_course.corpus import Submission, fn

SUBMISSIONS = [
    Submission("right", "the reference answer", group="demo"),
    Submission("wrong", "returns the dot product", group="demo",
               answers={"cosine": fn("cosine", "return sum(a * b for a, b in zip(x, y))",
                                     args="x: list[float], y: list[float]", returns="float")},
               expected={"test_cosine": 0.0}, feedback=["this is the dot product"]),
    Submission("crashing", "raises on every call", group="demo",
               answers={"cosine": fn("cosine", "raise ZeroDivisionError('oops')",
                                     args="x: list[float], y: list[float]", returns="float")},
               expected={"test_cosine": 0.0}, feedback=["it raised ZeroDivisionError: oops"]),
]
