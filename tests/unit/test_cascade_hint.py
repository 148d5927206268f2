"""A missed number's hint names the student's first wrong function (interp_course.judging.cascade).

Issue 27: the evidence check told a student whose ``center`` was wrong to "center W_E_sub with
your center() first", though they had; the number was wrong because their center() was.
"""

from __future__ import annotations

from interp_course.judging.cascade import functions_judged, name_first_wrong
from interp_course.judging.verdict import Item, Verdict

HINT = "`neo_centered_mean_cos` = 0.9 is off; center W_E_sub with your center() first, then average pairwise_cosine_sim(X)"
INPUTS = {
    "test_pairwise_cosine_sim": {"pairwise_cosine_sim/float32": 0, "pairwise_cosine_sim/float64": 0},
    "test_center": {"center/float64_7x5": 0},
    "test_evidence": {},
}


def verdict(grade_id: str, points: float, message: str = "") -> Verdict:
    return Verdict(grade_id, [Item("the item", 2.0, points, message)])


def test_a_test_cells_functions_are_the_keys_of_its_inputs():
    assert functions_judged(INPUTS["test_center"]) == {"center"}
    assert functions_judged({}) == set() and functions_judged({"no-slash": 0}) == set()


def test_the_first_wrong_function_the_hint_names_is_named_first():
    earlier = {"test_pairwise_cosine_sim": verdict("test_pairwise_cosine_sim", 2.0),
               "test_center": verdict("test_center", 0.0)}
    judged = name_first_wrong(verdict("test_evidence", 0.0, HINT), earlier, INPUTS)
    message = judged.items[0].message
    assert message.startswith("This is computed with your center(), which lost points in test_center (0/2): "
                              "fix center() first. ")
    assert message.endswith(HINT)

    # both wrong: the one the notebook judged first (the chain's first link)
    earlier["test_pairwise_cosine_sim"] = verdict("test_pairwise_cosine_sim", 1.5)
    judged = name_first_wrong(verdict("test_evidence", 0.0, HINT), earlier, INPUTS)
    assert judged.items[0].message.startswith("This is computed with your pairwise_cosine_sim(), which lost points "
                                              "in test_pairwise_cosine_sim (1.5/2)")


def test_a_hint_is_left_alone_when_its_functions_passed_or_it_names_none():
    earlier = {"test_center": verdict("test_center", 2.0)}
    assert name_first_wrong(verdict("test_evidence", 0.0, HINT), earlier, INPUTS).items[0].message == HINT
    earlier = {"test_center": verdict("test_center", 0.0)}
    other = "`mean_to_token_norm` is off: divide the norm of the mean by the median norm"
    assert name_first_wrong(verdict("test_evidence", 0.0, other), earlier, INPUTS).items[0].message == other
    # "center" as a word, or inside another name, is not the function
    assert name_first_wrong(verdict("test_evidence", 0.0, "the centered mean, recenter(x)"), earlier,
                            INPUTS).items[0].message == "the centered mean, recenter(x)"
    passed = Verdict("test_evidence", [Item("x", 0.5, 0.5, "center(W) ran")])
    assert name_first_wrong(passed, earlier, INPUTS).items[0].message == "center(W) ran"


def test_a_functions_own_check_never_blames_itself():
    earlier = {"test_center": verdict("test_center", 0.0)}
    again = verdict("test_center", 0.0, "your center() subtracted the wrong mean")
    assert name_first_wrong(again, earlier, INPUTS).items[0].message == "your center() subtracted the wrong mean"
