"""Shared fixtures: tiny random Llama / Mistral / Qwen2 (+ Qwen3, Gemma3) backbones with a character tokenizer.

Built from a config with a fixed seed (2 layers, hidden 32, 4 heads, 2 KV heads) and saved to a temporary
folder, so they load through the same `AutoModel.from_pretrained` path as a real checkpoint, need no download,
and run in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Never reach for the hub in tests; a test that needs the network must say so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILIES = ("llama", "mistral", "qwen2")
ALL_FAMILIES = FAMILIES + ("qwen3", "gemma3_text")
VOCAB = ["<unk>", "<eos>", "<bos>"] + [chr(c) for c in range(32, 127)]


def char_tokenizer():
    """A fast character-level tokenizer (with offsets) whose ids fit the tiny models' vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>", bos_token="<bos>")


def tiny_config(family: str, **overrides):
    from transformers import AutoConfig

    # pad_token_id=0, not EOS: a fresh embedding table zeroes its padding_idx row, and EOS is pooled.
    common = dict(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, eos_token_id=1, pad_token_id=0, bos_token_id=2,
    )
    if family == "gemma3_text":
        common.update(head_dim=8, sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    if family == "qwen3":
        common.update(head_dim=8)
    common.update(overrides)
    return AutoConfig.for_model(family, **common)


def build_tiny(family: str, path: Path, seed: int = 0, **overrides) -> Path:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides), dtype=torch.float32)
    model.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """{family: folder} of saved tiny random checkpoints."""
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny(family, root / family) for family in ALL_FAMILIES}


@pytest.fixture(scope="session")
def tiny_llama(tiny_dirs) -> Path:
    return tiny_dirs["llama"]
