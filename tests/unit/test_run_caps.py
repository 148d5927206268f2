"""Kept runs: a stable, unambiguous key, and hand-ins capped in bytes (issue 28, rows 9 and 10)."""

from __future__ import annotations

import json

import nbformat
import pytest
import torch
from safetensors.torch import save

from interp_course import handin
from interp_course.grading import run_cache
from interp_course.judging import HandIn
from interp_course.handin import MAX_VALUE_BYTES
from interp_course.judging.handin_files import MAX_RUN_HAND_INS, MAX_TENSOR_FILE, RawHandIn, cap_run, read_raw_hand_in
from interp_course.judging.judge import missing_hand_in


@pytest.fixture
def run(tmp_path):
    for name in ("inbox", "work"):
        (tmp_path / name).mkdir()
    return tmp_path


def key(run, nb):
    return run_cache.run_key(nb, run / "inbox", run / "work", [], {})


def without_ids(nb) -> str:
    """The notebook as nbformat 4.5 JSON whose cells have no ``id`` (as some tools save it)."""
    data = json.loads(nbformat.writes(nb))
    for cell in data["cells"]:
        del cell["id"]
    data["nbformat_minor"] = 5
    return json.dumps(data)


def test_the_key_of_a_notebook_without_cell_ids_is_the_same_at_every_read(run):
    text = without_ids(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                                       nbformat.v4.new_markdown_cell("hi")]))
    first, second = (nbformat.reads(text, as_version=4) for _ in range(2))
    assert first.cells[0].id != second.cells[0].id  # nbformat draws new random ids each read
    assert key(run, first) == key(run, second)
    changed = nbformat.reads(text.replace("x = 1", "x = 2"), as_version=4)
    assert key(run, changed) != key(run, first)


def test_extra_file_names_cannot_be_made_to_feed_the_same_bytes(tmp_path):
    nb = nbformat.v4.new_notebook()
    one, two = tmp_path / "one", tmp_path / "two"
    for r in (one, two):
        (r / "inbox").mkdir(parents=True)
        (r / "work").mkdir()
    # Unprefixed labels fed "work/x:2:AB" + "work/y:1:Z" for both.
    (one / "work" / "x").write_bytes(b"AB")
    (one / "work" / "y").write_bytes(b"Z")
    (two / "work" / "x:2:ABwork").mkdir()
    (two / "work" / "x:2:ABwork" / "y").write_bytes(b"Z")
    assert key(one, nb) != key(two, nb)


def outbox(tmp_path, grade_id: str, tensors: dict, report: dict | None = None):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / f"{grade_id}.safetensors").write_bytes(save(tensors))
    (tmp_path / f"{grade_id}.json").write_text(json.dumps(report or {"x": {"type": "torch.Tensor"}}))
    return tmp_path


def test_a_padded_hand_in_is_refused_unread_and_the_verdict_says_what_and_how_big(tmp_path):
    box = outbox(tmp_path, "test_a", {"x": torch.ones(3), "padding": torch.zeros(MAX_TENSOR_FILE // 4 + 10)})
    raw = read_raw_hand_in(box, "test_a")
    assert raw.tensor_bytes == b"" and raw.problem is not None
    assert "its tensors (test_a.safetensors) came to 16 MiB, more than the 16 MiB the grader reads for one cell" \
        in raw.problem
    note = missing_hand_in("test_a", 2.0, raw.problem, "").note
    assert "too large" in note and "nothing could be checked" in note


def test_all_hand_ins_of_a_notebook_together_are_capped_in_notebook_order():
    big = RawHandIn(b"t" * (MAX_TENSOR_FILE - 10), b"{}")
    hand_ins = {f"test_{i}": big for i in range(6)}
    capped = cap_run(hand_ins)
    kept = [g for g, r in capped.items() if r.problem is None]
    assert kept == ["test_0", "test_1", "test_2", "test_3"]
    assert "more than the 64 MiB the grader reads for one notebook" in capped["test_4"].problem
    assert sum(len(r.tensor_bytes) for r in capped.values()) <= MAX_RUN_HAND_INS
    assert cap_run(capped) == capped  # the judge's and the kept run's hand-ins are the same


def test_a_kept_run_is_capped_in_bytes(tmp_path):
    cache = run_cache.RunCache(tmp_path / "runs")
    nb = nbformat.v4.new_notebook()
    fine = run_cache.entry_files(nb, {"test_a": RawHandIn(b"t" * 100, b"{}")})
    cache.store("a" * 64, fine)
    assert cache.load("a" * 64) is not None
    too_big = {**fine, "test_a.safetensors": b"t" * (MAX_TENSOR_FILE + 1)}
    with pytest.raises(ValueError, match="too large"):
        cache.store("b" * 64, too_big)
    many = {**fine, **{f"test_{i}.safetensors": b"t" * MAX_TENSOR_FILE for i in range(5)},
            **{f"test_{i}.json": b"{}" for i in range(5)}}
    with pytest.raises(ValueError, match="too large together"):
        cache.store("c" * 64, many)
    # entry_files applies the notebook's cap itself: what it makes is always kept.
    stored = run_cache.entry_files(nb, {f"test_{i}": RawHandIn(b"t" * (MAX_TENSOR_FILE - 10), b"{}") for i in range(5)})
    cache.store("d" * 64, stored)
    _, hand_ins = cache.load("d" * 64)
    assert [g for g, r in hand_ins.items() if r.problem] == ["test_4"]


def test_one_too_large_value_is_left_out_of_the_hand_in_and_named():
    huge = torch.zeros(MAX_VALUE_BYTES // 4 + 1)
    tensors, report = handin.collect({"token_norms": huge, "top_share": 0.5}, {})
    assert "token_norms" not in tensors and report["token_norms"]["too_large_bytes"] == huge.numel() * 4
    handed = HandIn(tensors=tensors, report=report)
    assert handed.kind("token_norms") == "torch.Tensor of 8 MiB, too large for the grader to take as one value"
    assert MAX_VALUE_BYTES < MAX_TENSOR_FILE  # one kept value never makes its cell unreadable alone
    assert handed.number("top_share") == 0.5  # the cell's other values still count
