"""The offline stand-ins load through the students' code and carry the planted geometry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader_tests.puzzle1 import standins
from grader_tests.puzzle1.checks import GPT2
from grader_tests.puzzle1.checks import GPT_NEO as NEO
from interp_course.course import CHECKOUT

REPO_ROOT = CHECKOUT

# Any of these would override HF_HOME as the place the subprocess looks for models.
_CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
TARGETS = {NEO: (0.90, 0.02), GPT2: (0.30, 0.03)}  # mean pairwise cosine of W_E, tolerance

# Runs in a fresh interpreter with HF_HOME=<built cache> and HF_HUB_OFFLINE=1, exactly
# as a student's notebook would, and reports what it saw as one JSON line.
BOOT_SCRIPT = r"""
import json, time
import torch
from transformer_lens.model_bridge import TransformerBridge

out = {}
for name in ["EleutherAI/gpt-neo-125M", "gpt2"]:
    t = time.perf_counter()
    model = TransformerBridge.boot_transformers(name, device="cpu")
    boot_s = time.perf_counter() - t
    W = model.W_E.detach().double()
    U = W / W.norm(dim=1, keepdim=True)
    n, s = len(U), U.sum(0)
    text = "Hello world, the quick brown fox!"
    ids = model.to_tokens(text, prepend_bos=False)[0]
    out[name] = {
        "boot_s": boot_s,
        "shape": list(model.W_E.shape),
        "is_parameter": isinstance(model.W_E, torch.nn.Parameter),
        "mean_pairwise_cos": ((s @ s - n) / (n * (n - 1))).item(),
        "marker": getattr(model.original_model.config, "interp_course_stand_in", None),
        "config_vocab": model.original_model.config.vocab_size,
        "tokenizer_len": len(model.tokenizer),
        "roundtrip": model.tokenizer.decode(ids) == text,
        "logits_shape": list(model(text).shape),
    }

t = time.perf_counter()
try:
    TransformerBridge.boot_transformers("EleutherAI/pythia-70m", device="cpu")
    out["missing"] = {"error": None}
except Exception as e:
    out["missing"] = {"error": type(e).__name__, "is_oserror": isinstance(e, OSError)}
out["missing"]["seconds"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _files(hf_home: Path) -> dict[str, bytes]:
    hub = hf_home / "hub"
    return {str(p.relative_to(hub)): p.read_bytes() for p in sorted(hub.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture(scope="module")
def summary(hf_home) -> dict:
    return standins.build_standins(hf_home)


@pytest.fixture(scope="module")
def booted(hf_home, summary) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _CACHE_VARS}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", BOOT_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_embedding_stats_matches_brute_force():
    W = np.random.default_rng(0).standard_normal((300, 16)) + 0.7
    U = W / np.linalg.norm(W, axis=1, keepdims=True)
    C = U @ U.T
    brute = (C.sum() - np.trace(C)) / (300 * 299)
    m = W.mean(0)
    stats = standins.embedding_stats(W)
    assert stats["mean_pairwise_cos"] == pytest.approx(brute, abs=1e-12)
    assert stats["median_cos_with_mean"] == pytest.approx(np.median(U @ m / np.linalg.norm(m)))


def test_build_summary(summary):
    assert set(summary) == {NEO, GPT2}
    for repo_id, s in summary.items():
        target, tol = TARGETS[repo_id]
        assert s["built"]
        assert (s["vocab_size"], s["d_model"]) == (standins.VOCAB_SIZE, 64)
        assert s["vocab_size"] > 5000  # the notebook's 5000-token sample must be a strict subset
        assert abs(s["mean_pairwise_cos"] - target) <= tol
    assert abs(summary[NEO]["median_cos_with_mean"] - 0.95) <= 0.01


def test_cache_layout(hf_home, summary):
    for repo_id, s in summary.items():
        repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        rev = (repo_dir / "refs" / "main").read_text()
        assert len(rev) == 40 and int(rev, 16) >= 0
        snapshot = repo_dir / "snapshots" / rev
        assert Path(s["path"]) == snapshot
        assert {p.name for p in snapshot.iterdir()} >= set(standins.REQUIRED_FILES)
        config = json.loads((snapshot / "config.json").read_text())
        assert config[standins.STANDIN_MARKER] is True
        assert config["vocab_size"] == standins.VOCAB_SIZE
        assert config["model_type"] == {NEO: "gpt_neo", GPT2: "gpt2"}[repo_id]
        # Nothing left over from the build-then-rename.
        assert sorted(p.name for p in repo_dir.iterdir()) == ["refs", "snapshots"]


def test_neo_keeps_global_and_local_attention(summary):
    config = json.loads((Path(summary[NEO]["path"]) / "config.json").read_text())
    assert config["attention_layers"] == ["global", "local"]


def test_second_build_is_a_noop(hf_home, summary):
    before = _files(hf_home)
    mtimes = {p: p.stat().st_mtime_ns for p in (hf_home / "hub").rglob("*")}
    again = standins.build_standins(hf_home)
    assert not any(s["built"] for s in again.values())
    assert _files(hf_home) == before
    assert {p: p.stat().st_mtime_ns for p in (hf_home / "hub").rglob("*")} == mtimes


def test_build_is_deterministic(hf_home, summary, tmp_path):
    standins._bpe_vocab_and_merges.cache_clear()  # retrain the tokenizer too
    standins.build_standins(tmp_path)
    assert _files(tmp_path) == _files(hf_home)


def test_repairs_a_damaged_cache(hf_home, summary, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(hf_home, home)
    neo_repo = home / "hub" / "models--EleutherAI--gpt-neo-125M"
    (neo_repo / "refs" / "main").write_text("0" * 40)  # stale ref, snapshot intact
    gpt2_snapshot = Path(summary[GPT2]["path"].replace(str(hf_home), str(home)))
    (gpt2_snapshot / "model.safetensors").unlink()  # half a snapshot
    repaired = standins.build_standins(home)
    assert not repaired[NEO]["built"] and repaired[GPT2]["built"]
    assert _files(home) == _files(hf_home)


def test_cli_reports_each_model(hf_home, summary):
    proc = subprocess.run(
        [sys.executable, "-m", "grader_tests.puzzle1.standins", "--hf-home", str(hf_home)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{NEO}: up to date") and lines[1].startswith(f"{GPT2}: up to date")
    assert "mean_pairwise_cos=0.900" in lines[0] and "mean_pairwise_cos=0.300" in lines[1]


@pytest.mark.parametrize("repo_id", [NEO, GPT2])
def test_boots_offline_through_transformer_bridge(booted, repo_id):
    seen = booted[repo_id]
    target, tol = TARGETS[repo_id]
    assert seen["shape"] == [standins.VOCAB_SIZE, 64]
    assert abs(seen["mean_pairwise_cos"] - target) <= tol
    assert seen["marker"] is True
    assert seen["config_vocab"] == seen["tokenizer_len"] == standins.VOCAB_SIZE
    assert seen["roundtrip"]
    assert seen["logits_shape"][-1] == standins.VOCAB_SIZE


def test_uncached_model_fails_fast_offline(booted):
    missing = booted["missing"]
    assert missing["error"] is not None and missing["is_oserror"]
    assert missing["seconds"] < 10
