"""The full-size stand-ins' recipe has the real models' shapes, without building ~1 GB of weights.

`python -m grader_tests.puzzle1.standins --full-size` takes about a minute and `make bench FULL_SIZE=1`
grades on the result; here the configs are instantiated on torch's meta device (no memory) and
only the 50257-token tokenizer is trained (seconds).
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

from grader_tests.puzzle1 import standins
from grader_tests.puzzle1.checks import GPT2, GPT_NEO

FULL = {spec.repo_id: spec for spec in standins.standin_specs(full_size=True)}
# Parameter counts of the real checkpoints (tied embeddings counted once).
REAL_PARAMETERS = {GPT_NEO: 125_198_592, GPT2: 124_439_808}
CLASSES = {"gpt_neo": (GPTNeoConfig, GPTNeoForCausalLM), "gpt2": (GPT2Config, GPT2LMHeadModel)}


@pytest.mark.parametrize("repo_id", [GPT_NEO, GPT2])
def test_full_size_specs_have_the_real_shapes(repo_id):
    spec = FULL[repo_id]
    config_cls, model_cls = CLASSES[spec.model_type]
    config = config_cls(**spec.config_kwargs())
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        50257, 768, 12, 12)
    assert config.eos_token_id == config.bos_token_id == 50256
    with torch.device("meta"):
        model = model_cls(config)
    assert sum(p.numel() for p in model.parameters()) == REAL_PARAMETERS[repo_id]
    assert tuple(model.get_input_embeddings().weight.shape) == (50257, 768)
    assert spec.target_mean_cos == {GPT_NEO: 0.90, GPT2: 0.30}[repo_id]


def test_full_size_neo_alternates_global_and_local_attention_like_the_real_one():
    config = GPTNeoConfig(**FULL[GPT_NEO].config_kwargs())
    assert config.attention_layers == ["global", "local"] * 6
    assert (config.window_size, config.max_position_embeddings) == (256, 2048)
    assert GPT2Config(**FULL[GPT2].config_kwargs()).n_positions == 1024


def test_full_size_tokenizer_covers_the_whole_vocabulary():
    tok = standins._tokenizer(FULL[GPT_NEO])
    assert len(tok) == 50257 and tok.eos_token_id == 50256 and tok.convert_ids_to_tokens(50256) == standins.EOT
    assert max(tok.get_vocab().values()) == 50256
    text = "Hello world, the quick brown fox! Ünïcode 123"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text and max(ids) < 50257


def test_the_tiny_stand_ins_are_unchanged_and_the_full_size_ones_distinct():
    # Built caches are kept by revision: a changed recipe for the tiny ones would rebuild every cache.
    tiny = {spec.repo_id: spec.revision for spec in standins.standin_specs()}
    assert tiny == {GPT_NEO: "1758b49fe54412d4a15eb762d58a6c7b46cb679e", GPT2: "17f950070525c5e260c92c051adb58e5ffefd0b5"}
    assert not set(tiny.values()) & {spec.revision for spec in FULL.values()}
