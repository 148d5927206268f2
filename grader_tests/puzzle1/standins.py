"""Offline stand-ins for the two checkpoints used in Mech Interp Puzzle 1: tiny, or full-size.

The puzzle loads GPT-Neo-125M (``EleutherAI/gpt-neo-125M``) and GPT-2 small
(``gpt2``) with ``TransformerBridge.boot_transformers`` and compares the pairwise
cosine similarity of their token embeddings ``W_E``: GPT-Neo's average is above
0.9 (every row shares one big mean vector; a row's cosine with the vocabulary
mean is typically about 0.95) while GPT-2 small's is about 0.3.

The grading machines cannot reach the Hugging Face Hub, so this module writes
two tiny checkpoints (d_model 64, 2 layers, 8192-token byte-level BPE) into a
local Hugging Face cache under the real repo ids.  With ``HF_HOME`` pointing at
that cache and ``HF_HUB_OFFLINE=1`` the students' unchanged code loads them.
Their token embeddings carry the same geometry as the real models (a shared
mean vector plus isotropic noise, calibrated to the targets above); everything
else is small random noise, so the models compute nothing meaningful.  Each
config has ``"interp_course_stand_in": true`` so that code can tell a stand-in
from the real model and say so.

``--full-size`` writes stand-ins with the real shapes instead (vocab 50257,
d_model 768, 12 layers and 12 heads each; GPT-Neo's alternating global/local
attention with window 256; 2048 and 1024 positions; a 50257-token BPE), about
500 MB each, for measuring grading time and memory at real scale
(``make bench FULL_SIZE=1``).  Same geometry, same cache layout.

Usage::

    python -m grader_tests.puzzle1.standins --hf-home DIR [--full-size]

Building is deterministic (same bytes on every run) and idempotent (a snapshot
whose ``refs/main`` already names the expected revision is left untouched).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from grader_tests.puzzle1.checks import GPT2, GPT_NEO

# Bump when anything that changes the written bytes changes: it feeds the revision hash.
STANDIN_VERSION = "interp-course-standins/1"
STANDIN_MARKER = "interp_course_stand_in"

VOCAB_SIZE = 8192
D_MODEL = 64
N_CTX = 128
EOT = "<|endoftext|>"
EOT_ID = VOCAB_SIZE - 1  # last id, as in the real models (50256 of 50257)
# The real models' shapes (GPT-Neo-125M and GPT-2 small alike).
FULL_VOCAB_SIZE = 50257
FULL_D_MODEL = 768
FULL_N_LAYERS = 12
FULL_N_HEADS = 12

REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)
WTE_KEY = "transformer.wte.weight"

# The note's text is part of the recipe (it is written into each config, so into the revision hash):
# it keeps the module's first name, so that caches built before the module moved stay valid.
_NOTE = (
    "Tiny offline stand-in written by interp_course.standins, not the real {name}: "
    "its token embeddings are planted to mimic the real model's cosine geometry; "
    "all other weights are random."
)
_FULL_NOTE = _NOTE.replace("Tiny offline", "Full-size offline")


@dataclass(frozen=True)
class StandIn:
    """One stand-in checkpoint: where it goes, its architecture and its planted geometry."""

    repo_id: str
    model_type: str  # "gpt_neo" or "gpt2"
    config: dict  # config kwargs (besides the shared ones added in _config_kwargs)
    target_mean_cos: float  # mean pairwise cosine of W_E over the whole vocabulary
    seed: int
    vocab_size: int = VOCAB_SIZE  # the tokenizer's too; EOT is the last id
    n_ctx: int = N_CTX  # the tokenizer's model_max_length
    note: str = _NOTE

    @property
    def eot_id(self) -> int:
        return self.vocab_size - 1

    def config_kwargs(self) -> dict:
        return {
            **self.config,
            "vocab_size": self.vocab_size,
            "bos_token_id": self.eot_id,
            "eos_token_id": self.eot_id,
            STANDIN_MARKER: True,
            "interp_course_note": self.note.format(name=self.repo_id),
        }

    @property
    def revision(self) -> str:
        """A fake 40-hex commit hash, fixed by everything that determines the files."""
        recipe = {
            "version": STANDIN_VERSION,
            "repo_id": self.repo_id,
            "model_type": self.model_type,
            "config": self.config_kwargs(),
            "target_mean_cos": self.target_mean_cos,
            "seed": self.seed,
        }
        return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _pair(d_model: int, n_layers: int, n_heads: int, window: int, neo_ctx: int, gpt2_ctx: int,
          **shared) -> tuple[StandIn, StandIn]:
    """GPT-Neo-like and GPT-2-like stand-ins of one size: the real models' architecture (GPT-Neo's
    alternating global and local attention included), mean cosines 0.9 and 0.3."""
    neo = StandIn(
        repo_id=GPT_NEO,
        model_type="gpt_neo",
        config=dict(
            hidden_size=d_model,
            num_layers=n_layers,
            num_heads=n_heads,
            attention_types=[[["global", "local"], n_layers // 2]],
            window_size=window,
            max_position_embeddings=neo_ctx,
            activation_function="gelu_new",
            embed_dropout=0.0,
            resid_dropout=0.0,
            attention_dropout=0.0,
        ),
        target_mean_cos=0.90,
        seed=1_250,
        **({"n_ctx": neo_ctx} if shared else {}), **shared,
    )
    gpt2 = StandIn(
        repo_id=GPT2,
        model_type="gpt2",
        config=dict(n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_positions=gpt2_ctx,
                    activation_function="gelu_new"),
        target_mean_cos=0.30,
        seed=2_124,
        **({"n_ctx": gpt2_ctx} if shared else {}), **shared,
    )
    return neo, gpt2


# Tiny (what the test suite grades with): two layers, one global + local pair.
STANDINS = _pair(D_MODEL, 2, 4, window=32, neo_ctx=N_CTX, gpt2_ctx=N_CTX)
# The real models' shapes, attention pattern and context lengths; everything but W_E random.
FULL_SIZE_STANDINS = _pair(FULL_D_MODEL, FULL_N_LAYERS, FULL_N_HEADS, window=256, neo_ctx=2048, gpt2_ctx=1024,
                           vocab_size=FULL_VOCAB_SIZE, note=_FULL_NOTE)


def standin_specs(full_size: bool = False) -> tuple[StandIn, ...]:
    return FULL_SIZE_STANDINS if full_size else STANDINS


# --------------------------------------------------------------------------- geometry


def _float64(W) -> np.ndarray:
    """A numpy float64 copy of W (numpy array or torch tensor, e.g. model.W_E)."""
    return np.asarray(W.detach().cpu() if hasattr(W, "detach") else W, dtype=np.float64)


def _unit_rows(W: np.ndarray) -> np.ndarray:
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def _mean_pairwise_cos(U: np.ndarray) -> float:
    """Exact mean of cos(x_i, x_j) over i != j, for unit rows U, in O(n*d).

    sum_{i,j} <u_i, u_j> = |sum_i u_i|^2, and the n diagonal terms are each 1.
    """
    n = len(U)
    s = U.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def embedding_stats(W) -> dict:
    """Mean pairwise cosine of the rows of W, and median cosine of a row with the mean row."""
    W = _float64(W)
    U = _unit_rows(W)
    mean_row = W.mean(axis=0)
    cos_with_mean = U @ (mean_row / np.linalg.norm(mean_row))
    return {
        "mean_pairwise_cos": _mean_pairwise_cos(U),
        "median_cos_with_mean": float(np.median(cos_with_mean)),
    }


def planted_embedding(n: int, d: int, target_mean_cos: float, seed: int) -> np.ndarray:
    """Rows = scale_i * (a * u + z_i): shared direction u, isotropic noise z_i, varied norms.

    The mean length `a` is solved for by bisection so that the mean pairwise cosine
    over all n rows is exactly `target_mean_cos` (row scales do not affect cosines).
    With isotropic noise a row's cosine with the mean then sits near sqrt(target).
    """
    rng = np.random.default_rng(seed)  # numpy's PCG64 stream is the same on every platform
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    Z = 0.25 * rng.standard_normal((n, d))
    scales = np.exp(0.15 * rng.standard_normal((n, 1)))  # real row norms vary by tens of %
    uz, zz = Z @ u, np.einsum("ij,ij->i", Z, Z)

    def mean_cos(a: float) -> float:
        # _mean_pairwise_cos(_unit_rows(a * u + Z)) without forming the n x d matrix (one
        # matrix-vector product instead of several full passes: seconds at 50257 x 768).
        w = 1 / np.sqrt(a * a + 2 * a * uz + zz)  # 1 / |a u + z_i|
        zw = Z.T @ w
        sw = w.sum()
        ss = a * a * sw * sw + 2 * a * sw * (u @ zw) + zw @ zw  # |sum_i (a u + z_i) w_i|^2
        return float((ss - n) / (n * (n - 1)))

    lo, hi = 0.0, 1.0
    while mean_cos(hi) < target_mean_cos:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_cos(mid) < target_mean_cos else (lo, mid)
    # Rounding keeps last-ulp differences in the bisection (other CPUs/BLAS) out of the bytes.
    a = round((lo + hi) / 2, 6)
    return (scales * (a * u + Z)).astype(np.float32)


# --------------------------------------------------------------------------- tokenizer


def _corpus(seed: int = 0, n_words: int = 20_000, n_lines: int = 4_000) -> list[str]:
    # Thousands of distinct random words: a small repeated corpus runs out of pairs to
    # merge before reaching the requested vocabulary size.
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n_words:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    vocab = sorted(words)
    return [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(n_lines)]


# Distinct words and lines of the training corpus, by vocabulary size: enough pairs to merge.
_CORPUS_SIZE = {VOCAB_SIZE: (20_000, 4_000), FULL_VOCAB_SIZE: (60_000, 12_000)}


@lru_cache(maxsize=2)
def _bpe_vocab_and_merges(vocab_size: int = VOCAB_SIZE) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Train a GPT-2-style byte-level BPE with vocab_size - 1 entries; EOT takes the last id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    n_words, n_lines = _CORPUS_SIZE[vocab_size]
    tok.train_from_iterator(_corpus(0, n_words, n_lines), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    if len(vocab) != vocab_size - 1:
        raise RuntimeError(f"BPE training reached {len(vocab)} tokens, wanted {vocab_size - 1}")
    vocab[EOT] = vocab_size - 1
    return vocab, tuple(tuple(m) for m in model["merges"])


def _tokenizer(spec: StandIn):
    from transformers import GPT2Tokenizer  # tokenizers-backed in transformers 5

    vocab, merges = _bpe_vocab_and_merges(spec.vocab_size)
    tok = GPT2Tokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=spec.n_ctx)
    assert len(tok) == spec.vocab_size and tok.eos_token_id == spec.eot_id
    return tok


# --------------------------------------------------------------------------- model


def _model(spec: StandIn):
    import torch
    from torch import nn
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

    config_cls, model_cls = {
        "gpt_neo": (GPTNeoConfig, GPTNeoForCausalLM),
        "gpt2": (GPT2Config, GPT2LMHeadModel),
    }[spec.model_type]
    model = model_cls(config_cls(**spec.config_kwargs()))

    # Overwrite every parameter from numpy generators rather than torch's init, so the
    # bytes depend neither on torch's CPU kernels nor on transformers' init code.
    rng = np.random.default_rng(spec.seed + 1)
    wte = model.get_input_embeddings().weight  # also lm_head.weight (tied)
    seen: set[int] = set()
    with torch.no_grad():
        for _, module in sorted(model.named_modules(), key=lambda m: m[0]):
            for name, p in sorted(module.named_parameters(recurse=False)):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if p is wte:
                    value = planted_embedding(*p.shape, spec.target_mean_cos, spec.seed)
                elif isinstance(module, nn.LayerNorm):
                    value = np.ones(p.shape) if name == "weight" else np.zeros(p.shape)
                elif name == "bias":
                    value = np.zeros(p.shape)
                else:
                    value = 0.02 * rng.standard_normal(p.shape)
                p.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
    return model


def _write_snapshot(spec: StandIn, out_dir: Path) -> None:
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # save_pretrained shows a shard bar on stderr
    try:
        _model(spec).save_pretrained(out_dir)
        _tokenizer(spec).save_pretrained(out_dir)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    missing = [f for f in REQUIRED_FILES if not (out_dir / f).is_file()]
    if missing:
        raise RuntimeError(f"save_pretrained did not write {missing} for {spec.repo_id}")


# --------------------------------------------------------------------------- HF cache


def _repo_dir(hf_home: Path, repo_id: str) -> Path:
    return Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))


def _is_complete(snapshot: Path) -> bool:
    return all((snapshot / f).is_file() for f in REQUIRED_FILES)


def _build_snapshot(spec: StandIn, snapshot: Path) -> None:
    # Build beside the target and rename, so a crash never leaves half a snapshot.
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=snapshot.parent.parent))
    try:
        _write_snapshot(spec, tmp)
        # mkdtemp makes the directory private (0700) and safetensors writes 0600 files;
        # a cache is often shared (e.g. built as one user, graded as another).
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if snapshot.exists():
            shutil.rmtree(snapshot)  # incomplete: debris from a hand-edited cache
        try:
            os.replace(tmp, snapshot)
        except OSError:
            if not _is_complete(snapshot):  # unless a concurrent build just won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(spec: StandIn, hf_home: Path) -> tuple[Path, bool]:
    """Make hub/models--.../snapshots/<rev> and refs/main; return (snapshot, built_now)."""
    repo_dir = _repo_dir(hf_home, spec.repo_id)
    rev = spec.revision
    snapshot = repo_dir / "snapshots" / rev
    ref = repo_dir / "refs" / "main"
    built = not _is_complete(snapshot)
    if built:
        _build_snapshot(spec, snapshot)
    if not (ref.is_file() and ref.read_text() == rev):
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp_ref = ref.with_name(f".main-{os.getpid()}")
        tmp_ref.write_text(rev)  # the bare hash, no newline, as huggingface_hub writes it
        os.replace(tmp_ref, ref)
    return snapshot, built


def _summary(spec: StandIn, snapshot: Path, built: bool) -> dict:
    from safetensors import safe_open

    with safe_open(snapshot / "model.safetensors", framework="np") as f:
        W = f.get_tensor(WTE_KEY)
    return {
        "path": str(snapshot),
        "revision": spec.revision,
        "vocab_size": W.shape[0],
        "d_model": W.shape[1],
        **embedding_stats(W),
        "built": built,
    }


def build_standins(hf_home: Path, full_size: bool = False) -> dict:
    """Install both stand-ins under `hf_home` (an HF_HOME); return {repo_id: summary dict}.

    ``full_size``: the real models' shapes (FULL_SIZE_STANDINS) instead of the tiny ones.
    Each summary has path, revision, vocab_size, d_model, mean_pairwise_cos,
    median_cos_with_mean and built (False when the snapshot was already there).
    """
    result = {}
    for spec in standin_specs(full_size):
        snapshot, built = _install(spec, Path(hf_home))
        result[spec.repo_id] = _summary(spec, snapshot, built)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf-home", type=Path, required=True, help="HF_HOME to install into")
    parser.add_argument("--full-size", action="store_true",
                        help="the real shapes (vocab 50257, d_model 768, 12 layers; ~1 GB) instead of tiny ones")
    args = parser.parse_args(argv)
    for repo_id, s in build_standins(args.hf_home, args.full_size).items():
        print(
            f"{repo_id}: {'built' if s['built'] else 'up to date'} {s['path']} "
            f"vocab={s['vocab_size']} d_model={s['d_model']} "
            f"mean_pairwise_cos={s['mean_pairwise_cos']:.3f} "
            f"median_cos_with_mean={s['median_cos_with_mean']:.3f}"
        )


if __name__ == "__main__":
    main()
