"""The judging library on hand-made hand-ins: no kernel, no nbgrader."""

from __future__ import annotations

import pytest
import torch

from interp_course import handin
from interp_course.judging import Check, HandIn, Item, judge_function, value_item
from interp_course.judging.verdict import Verdict

ATOL = RTOL = 1e-6


def hand(objects: dict, inputs: dict) -> HandIn:
    """What the kernel side would hand in for these objects, without a kernel."""
    cases = {key: handin.arguments(case) for key, case in inputs.items()}
    tensors, report = handin.collect(objects, cases)
    return HandIn(tensors=tensors, report=report)


def double(W):
    return 2 * W


INPUTS = {"double/a": torch.ones(3, 2), "double/b": torch.arange(4.0).reshape(2, 2)}
BUGS = [(lambda W: 3 * W, "you tripled it"), (None, ("boom", "it blew up"))]


def judge(fn, **kw):
    return judge_function("double", INPUTS, hand({"double": fn}, INPUTS), double, BUGS, 1.0, 0.5,
                          atol=ATOL, rtol=RTOL, **kw)


def test_right_function_earns_values_and_contract():
    values, contract = judge(lambda W: W + W)
    assert (values.points, contract.points) == (1.0, 0.5)


def test_a_known_bug_is_named_and_the_contract_is_not_given_for_wrong_values():
    values, contract = judge(lambda W: 3 * W)
    assert values.points == 0 and "you tripled it" in values.message and "2 of 2" in values.message
    assert contract.points == 0 and contract.message == "earned together with the right values"


def test_an_exception_is_matched_by_its_message():
    def fn(W):
        raise ValueError("boom!")

    values, _ = judge(fn)
    assert "it raised ValueError: boom! — it blew up" in values.message


def test_in_place_modification_costs_the_contract_only():
    def fn(W):
        W *= 2
        return W.clone()

    values, contract = judge(fn)
    assert values.points == 1.0 and contract.points == 0 and "modified its input in place" in contract.message


def test_wrong_kind_of_result_costs_the_contract_only():
    values, contract = judge(lambda W: (2 * W).numpy())
    assert values.points == 1.0 and contract.points == 0 and "got numpy.ndarray" in contract.message


def test_missing_function_says_so():
    values, _ = judge_function("double", INPUTS, hand({"double": handin.Missing}, INPUTS), double, BUGS,
                               1.0, 0.5, atol=ATOL, rtol=RTOL)
    assert values.points == 0 and "`double` is not defined" in values.message


def add(x, y):
    return float(sum(x) + sum(y))


def test_functions_of_several_arguments_returning_numbers():
    inputs = {"add/lists": ([1.0, 2.0], [3.0]), "add/tensor_and_list": (torch.tensor([1.0, 1.0]), [0.5])}
    good = hand({"add": lambda x, y: float(sum(x)) + sum(y)}, inputs)
    values, contract = judge_function("add", inputs, good, add, [], 1.0, 1.0, atol=ATOL, rtol=RTOL, returns="number")
    assert (values.points, contract.points) == (1.0, 1.0)
    bad = hand({"add": lambda x, y: "five"}, inputs)
    values, contract = judge_function("add", inputs, bad, add, [], 1.0, 1.0, atol=ATOL, rtol=RTOL, returns="number")
    assert values.points == 0 and "not a tensor or a number" in values.message


def test_a_changed_list_argument_is_reported():
    inputs = {"add/lists": ([1.0, 2.0], [3.0])}

    def sneaky(x, y):
        x.append(0.0)
        return add(x, y)

    handed = hand({"add": sneaky}, inputs)
    assert handed.modified_input("add/lists")


def test_value_item_accepts_numbers_in_any_form_and_explains_misses():
    for value in (0.5, torch.tensor(0.5), torch.tensor([0.5])):
        handed = hand({"x": value}, {})
        assert value_item(handed, "x", 0.5, 1e-9, "x", 1.0, "hint").points == 1.0
    off = value_item(hand({"x": 0.7}, {}), "x", 0.5, 1e-3, "x", 1.0, "compute it on W")
    assert off.points == 0 and off.message == ("`x` = 0.7 is more than ten times the allowed ±0.001 away from "
                                               "the grader's value; compute it on W")
    missing = value_item(hand({"x": handin.Missing}, {}), "x", 0.5, 1e-3, "x", 1.0, "hint")
    assert "is not defined" in missing.message
    text = value_item(hand({"x": "0.5"}, {}), "x", 0.5, 1e-3, "x", 1.0, "hint")
    assert "should be a single finite number (got str)" in text.message


def test_plain_data_results_come_back_as_json_and_hostile_objects_only_as_their_type():
    class Hostile:
        def __getattr__(self, name):
            raise SystemExit("no")

    handed = hand({"d": {"a": [1, 2.5], "b": "text"}, "h": Hostile(), "big": list(range(100_000))}, {})
    assert handed.value("d") == {"a": [1, 2.5], "b": "text"}
    assert handed.kind("h").endswith("Hostile") and handed.value("h") is None
    assert handed.value("big") is None and handed.entry("big").get("too_large")


def test_check_refuses_items_that_do_not_add_up_to_its_points():
    check = Check("test_x", 2.0, lambda context: {}, lambda inputs, handed, context: [Item("a", 1.0)])
    with pytest.raises(AssertionError, match="add up to 1.0, not 2.0"):
        check.verdict({}, HandIn(), {})


def test_verdict_text_gives_each_item_a_short_line_and_its_message_the_next():
    verdict = Verdict("test_x", [Item("first", 1.0, 1.0), Item("second", 0.5, 0.0, "why")], note="a note")
    assert verdict.text().splitlines() == [
        "test_x: 1 / 1.5 points", "a note", "  ✓ 1/1  first", "  ✗ 0/0.5  second", "      why"]


def test_a_wrong_value_names_the_input_shape_and_the_size_of_the_error():
    values, _ = judge(lambda W: 3 * W)
    # 3W - 2W on the first failing case (a: ones(3, 2)) is 1 everywhere
    assert "(e.g. input a of shape [3, 2]: largest error 1; 1 more)" in values.message


def test_a_result_of_the_wrong_size_says_so_instead_of_an_error():
    values, _ = judge(lambda W: W.sum(dim=0))
    assert "input a of shape [3, 2]: result of shape [2] where [3, 2] was expected" in values.message


def test_nan_results_are_counted():
    values, _ = judge(lambda W: W * float("nan"))
    assert "input a of shape [3, 2]: 6 NaN/inf values" in values.message


def test_a_missed_number_says_how_near_it_is_without_giving_the_graders_number_away():
    near = value_item(hand({"x": 0.55}, {}), "x", 0.5, 0.01, "x is right", 1.0, "look again")
    assert near.points == 0 and near.message == ("`x` = 0.55 is close to the grader's value but not within "
                                                 "the allowed ±0.01; look again")
    far = value_item(hand({"x": 0.75}, {}), "x", 0.5, 0.01, "x is right", 1.0, "look again")
    assert far.points == 0 and "more than ten times the allowed ±0.01 away" in far.message
    for item in (near, far):
        assert "0.5" not in item.message.replace("0.55", "") and "0.25" not in item.message  # nor the gap


def test_reference_results_are_computed_once_per_input_object():
    calls = []

    def reference(W):
        calls.append(W)
        return 2 * W

    W = torch.ones(2, 2)
    for _ in range(3):  # three students judged on the batch's one input tensor
        values, _ = judge_function("double", {"double/a": W}, hand({"double": double}, {"double/a": W}),
                                   reference, BUGS, 1.0, 0.5, atol=ATOL, rtol=RTOL)
        assert values.points == 1.0
    assert len(calls) == 1
    # Another object (even with equal values) is another input: computed again, never mixed up.
    values, _ = judge_function("double", {"double/a": W + 1}, hand({"double": double}, {"double/a": W + 1}),
                               reference, BUGS, 1.0, 0.5, atol=ATOL, rtol=RTOL)
    assert values.points == 1.0 and len(calls) == 2
