"""The inbox/outbox protocol round trip, and reading an outbox the student's kernel controlled."""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import save_file

from interp_course import handin
from interp_course.judging.handin_files import MAX_REPORT_FILE, read_hand_in


def test_inbox_round_trip_keeps_tensor_and_json_arguments(tmp_path):
    inputs = {"f/one": torch.eye(2), "f/two": (torch.ones(3), [1, 2], {"k": 0.5}, "text")}
    handin.write_inbox(tmp_path, "test_f", inputs)
    back = handin.read_inbox(tmp_path, "test_f")
    assert torch.equal(back["f/one"][0], torch.eye(2))
    assert torch.equal(back["f/two"][0], torch.ones(3)) and back["f/two"][1:] == ([1, 2], {"k": 0.5}, "text")


def write_outbox(outbox, grade_id="test_f"):
    outbox.mkdir(exist_ok=True)
    tensors, report = handin.collect({"x": torch.ones(2)}, {})
    handin._write(outbox, grade_id, tensors, report)


def test_a_well_formed_hand_in_is_read(tmp_path):
    write_outbox(tmp_path)
    handed = read_hand_in(tmp_path, "test_f")
    assert not handed.problem and torch.equal(handed.tensor("x"), torch.ones(2))


def test_nothing_handed_in(tmp_path):
    assert read_hand_in(tmp_path, "test_f").problem == "nothing was handed in"
    assert read_hand_in(tmp_path / "missing", "test_f").problem == "nothing was handed in"


def test_symlinks_are_never_followed(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"x": {"type": "torch.Tensor"}}))
    outbox = tmp_path / "outbox"
    write_outbox(outbox)
    (outbox / "test_f.json").unlink()
    (outbox / "test_f.json").symlink_to(secret)
    assert "not a regular file" in read_hand_in(outbox, "test_f").problem
    # A symlinked outbox folder is refused as a whole.
    (tmp_path / "linked").symlink_to(outbox)
    assert read_hand_in(tmp_path / "linked", "test_f").problem == "nothing was handed in"


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    write_outbox(tmp_path)
    (tmp_path / "test_f.json").unlink()
    os.mkfifo(tmp_path / "test_f.json")  # nobody writes: a plain open() would block forever
    assert "not a regular file" in read_hand_in(tmp_path, "test_f").problem
    (tmp_path / "test_f.json").unlink()
    (tmp_path / "test_f.json").symlink_to("/dev/zero")
    assert "not a regular file" in read_hand_in(tmp_path, "test_f").problem


def test_oversized_and_malformed_files_are_refused(tmp_path):
    write_outbox(tmp_path)
    (tmp_path / "test_f.json").write_bytes(b" " * (MAX_REPORT_FILE + 1))
    assert "too large" in read_hand_in(tmp_path, "test_f").problem
    (tmp_path / "test_f.json").write_text("[1, 2]")
    assert read_hand_in(tmp_path, "test_f").problem == "the hand-in report was malformed"
    (tmp_path / "test_f.json").write_text("{}")
    save_file({"x": torch.ones(1)}, str(tmp_path / "test_f.safetensors"))
    (tmp_path / "test_f.safetensors").write_bytes(b"garbage")
    assert "could not be read" in read_hand_in(tmp_path, "test_f").problem
