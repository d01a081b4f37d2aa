"""The frozen-prefix cache (backbone/prefix.py) against full passes: embeddings, training, keys, switching off.

A 4-layer tiny backbone with LoRA on layers 2-3 (as configs/demo.yaml adapts only SmolLM2's upper 12 of 30), so
layers 0-1 are the cached prefix. Every comparison is cache on vs `prefix_cache: off` on the same model.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from poolattn.backbone.prefix import PrefixCache
from poolattn.backbone.prefix_store import PrefixStore, entry_bytes, shared_store
from poolattn.config import Config, LoraConfig, ModelConfig, PoolingConfig, merge
from poolattn.model import Embedder
from tests.conftest import build_tiny

TEXTS = ["the cat sat on the mat", "a dog", "", "stocks fell sharply on tuesday after the report", "x" * 90,
         "the cat sat on the mat and then it slept"]


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny4")
    return {family: build_tiny(family, root / family, num_hidden_layers=4) for family in ("llama", "qwen2", "mistral")}


def _model(path, *, attention="causal", pooling="eos", padding_side="right", cache="auto", store=None,
           lora=None, **overrides) -> Embedder:
    lora = lora or LoraConfig(r=4, alpha=8, dropout=0.0, layers=[2, 3])
    config = ModelConfig(backbone=str(path), attention=attention, padding_side=padding_side, max_length=64,
                         pooling=PoolingConfig(name=pooling, num_latents=4), lora=lora, dtype="float32",
                         prefix_cache=cache, **overrides)
    model = Embedder.from_config(config, device="cpu")
    if model.prefix_cache is not None and store is not None:
        model.prefix_cache = PrefixCache(store)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero: give the adapted layers an effect
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return model


# ----------------------------------------------------------------------------------------------- encode
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("pooling", ["eos", "mean", "latent", "multilayer"])
@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_encode_with_the_cache_equals_a_full_pass(tiny4, attention, pooling, padding_side):
    store = PrefixStore()
    kwargs = dict(attention=attention, pooling=pooling, padding_side=padding_side)
    full = _model(tiny4["llama"], cache="off", **kwargs).encode(TEXTS, batch_size=4)
    cached = _model(tiny4["llama"], store=store, **kwargs)
    cold = cached.encode(TEXTS, batch_size=4)
    assert cached.prefix_cache.last_reason is None and store.stats.misses > 0 and store.stats.hits == 0
    warm = cached.encode(TEXTS[::-1], batch_size=3)[::-1]  # other batches: every row comes from the store
    assert store.stats.hits >= len(TEXTS)
    np.testing.assert_allclose(cold, full, rtol=0, atol=1e-5)
    np.testing.assert_allclose(warm, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_other_verified_families_match_a_full_pass(tiny4, family):
    store = PrefixStore()
    full = _model(tiny4[family], cache="off", pooling="multilayer").encode(TEXTS)
    cached = _model(tiny4[family], store=store, pooling="multilayer")
    np.testing.assert_allclose(cached.encode(TEXTS), full, atol=1e-5)
    np.testing.assert_allclose(cached.encode(TEXTS), full, atol=1e-5)
    assert store.stats.hits > 0


def test_the_cache_is_not_a_no_op(tiny4):
    """Negative control: an entry overwritten with other values changes the embedding, so entries are read."""
    store = PrefixStore()
    model = _model(tiny4["llama"], store=store)
    before = model.encode(["a dog"])
    key = next(iter(store._entries))
    store.put(key, store.get(key) + 1.0)
    assert not np.allclose(model.encode(["a dog"]), before, atol=1e-3)


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_a_multilayer_head_finds_its_vectors_after_another_head_of_the_same_mode(tiny4, attention, monkeypatch):
    """Designs 3 and 5 after 1-2 and 4: the frozen layers' vectors were stored while the other head's prefix ran."""
    runs = []
    original = PrefixCache._run_prefix
    monkeypatch.setattr(PrefixCache, "_run_prefix", lambda self, *args: runs.append(1) or original(self, *args))
    full = _model(tiny4["llama"], cache="off", attention=attention, pooling="multilayer").encode(TEXTS)
    store = PrefixStore()
    _model(tiny4["llama"], store=store, attention=attention, pooling="eos").encode(TEXTS)
    assert runs  # the eos head ran the prefix and stored the states and the vectors
    runs.clear()
    multilayer = _model(tiny4["llama"], store=store, attention=attention, pooling="multilayer")
    np.testing.assert_allclose(multilayer.encode(TEXTS), full, rtol=0, atol=1e-5)
    assert runs == []  # every state and every frozen layer's vector came from the store
    alone = _model(tiny4["llama"], store=PrefixStore(), attention=attention, pooling="multilayer")
    np.testing.assert_allclose(alone.encode(TEXTS), full, rtol=0, atol=1e-5)
    assert runs  # control: with an empty store the multilayer head runs the prefix itself


# --------------------------------------------------------------------------------------------- training
def _train_config(path, tmp_path, out, cache, design, *, seed=7, dtype="float32"):
    from poolattn.designs import get_design

    rows = [{"id": f"r{i}", "query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}",
             "positive": f"answer {i} text", "negative": f"other thing {i + 1}", "source": "abc"[i % 3]}
            for i in range(8)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return merge(merge(Config(), get_design(design).overrides()), {
        "model": {"backbone": str(path), "max_length": 32, "pooling": {"num_latents": 4}, "dtype": dtype,
                  "prefix_cache": cache, "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "layers": [2, 3]}},
        "data": {"dataset_file_path": str(data)},
        "loss": {"scale": 20.0},
        "train": {"output_dir": str(tmp_path / out), "per_device_train_batch_size": 2, "max_steps": 6,
                  "save_steps": 100, "logging_steps": 1, "learning_rate": 1e-2, "disable_tqdm": True, "seed": seed},
    })


def _losses(folder):
    summary = json.loads((folder / "train_summary.json").read_text())
    return [e["loss"] for e in summary["log_history"] if "loss" in e]


def _saved(folder):
    out = load_file(str(folder / "adapter" / "adapter_model.safetensors"))
    if (folder / "pooler.safetensors").is_file():
        out.update({f"pooler.{k}": v for k, v in load_file(str(folder / "pooler.safetensors")).items()})
    return out


@pytest.mark.parametrize("design", [1, 3, 4])
def test_training_with_the_cache_gives_the_same_losses_and_weights(tiny4, tmp_path, design):
    from poolattn.training.run import train

    shared_store().clear()
    train(_train_config(tiny4["llama"], tmp_path, "off", "off", design))
    train(_train_config(tiny4["llama"], tmp_path, "cold", "auto", design))
    hits = shared_store().stats.hits
    train(_train_config(tiny4["llama"], tmp_path, "warm", "auto", design))  # 8 records, 6 steps: texts repeat
    assert shared_store().stats.hits > hits  # the warm run read the cold run's entries
    reference = _losses(tmp_path / "off")
    assert len(reference) == 6
    for run in ("cold", "warm"):
        np.testing.assert_allclose(_losses(tmp_path / run), reference, rtol=1e-6)
        saved, expected = _saved(tmp_path / run), _saved(tmp_path / "off")
        assert saved.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(saved[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_run_never_reads_entries_made_in_another_seeds_batches(tiny4, tmp_path, dtype):
    """A seed's run gives the same losses, hits and misses after another seed's run as alone (a resumed study)."""
    from poolattn.training.run import train

    store = shared_store()

    def seed8(out):
        before = (store.stats.hits, store.stats.misses)
        train(_train_config(tiny4["llama"], tmp_path, out, "auto", 1, seed=8, dtype=dtype))
        return store.stats.hits - before[0], store.stats.misses - before[1], _losses(tmp_path / out)

    store.clear()
    train(_train_config(tiny4["llama"], tmp_path, "seed7", "auto", 1, seed=7, dtype=dtype))  # the same 8 records
    after = seed8("after")
    store.clear()
    alone = seed8("alone")
    assert after[:2] == alone[:2] and alone[1] > 0  # seed 8 read nothing seed 7 made
    assert after[2] == alone[2]  # exactly, in bfloat16 too
    hits = store.stats.hits
    train(_train_config(tiny4["llama"], tmp_path, "design3", "auto", 3, seed=8, dtype=dtype))
    assert store.stats.hits - hits >= alone[1]  # another design of the same seed reads every state seed 8 made


# ------------------------------------------------------------------------------------------------- keys
def test_collision_shaped_texts_modes_and_backbones_never_share_an_entry(tiny4, tmp_path):
    store = PrefixStore()
    causal = _model(tiny4["llama"], store=store)
    # same leading tokens, different lengths: "a dog" is a prefix of "a dog barks" (before EOS)
    causal.encode(["a dog", "a dog barks", "a do"])
    # one state per text, and the frozen layers' vectors a multi-layer head of this mode would read
    assert _count(store, "state") == 3 and _count(store, "vectors") == 3
    states = [value for key, (value, _) in store._entries.items() if key[0] == "state"]
    assert sorted(s.shape[0] for s in states) == [5, 6, 12]
    # the same texts in the other mode, in bfloat16, and on another backbone: new entries, never a hit
    bidirectional = _model(tiny4["llama"], store=store, attention="bidirectional")
    other = build_tiny("llama", tmp_path / "other", seed=1, num_hidden_layers=4)
    for model in (bidirectional, _model(other, store=store)):
        hits = store.stats.hits
        model.encode(["a dog", "a dog barks", "a do"])
        assert store.stats.hits == hits
    half = _model(tiny4["llama"], store=store)
    half.to(torch.bfloat16)
    hits = store.stats.hits
    half.encode(["a dog", "a dog barks", "a do"])
    assert store.stats.hits == hits and _count(store, "state") == 12
    contexts = {key[1][0] for key in store._entries}
    assert len(contexts) == 4  # causal, bidirectional, other weights, bfloat16
    # the same text in the same setting is one entry, read back
    causal.encode(["a dog"])
    assert _count(store, "state") == 12 and store.stats.hits == hits + 1


def _count(store: PrefixStore, kind: str) -> int:
    return sum(key[0] == kind for key in store._entries)


def test_a_changed_frozen_weight_is_a_new_context(tiny4):
    store = PrefixStore()
    model = _model(tiny4["llama"], store=store)
    model.encode(["a dog"])
    with torch.no_grad():
        model.backbone.get_base_model().layers[0].mlp.up_proj.weight.mul_(1.5)
    hits = store.stats.hits
    model.encode(["a dog"])
    assert store.stats.hits == hits and _count(store, "state") == 2


def test_the_store_keeps_to_its_byte_budget():
    one = torch.zeros(10, 8)
    size = entry_bytes(("state", b"", (1, 2, 3)), one)
    assert size == 10 * 8 * 4 + 3 * 8
    store = PrefixStore(budget_bytes=2 * size)
    for i in range(3):
        store.put(("state", b"", (1, 2, i)), one)
    assert len(store) == 2 and store.stats.evictions == 1 and store.stats.bytes == 2 * size
    assert store.get(("state", b"", (1, 2, 0))) is None and store.get(("state", b"", (1, 2, 2))) is not None


# ------------------------------------------------------------------------------------------ switching off
@pytest.mark.parametrize("case", ["lora_dropout", "lora_low", "trainable_low", "embeddings", "gemma"])
def test_the_cache_switches_off_where_it_would_not_be_exact(tiny4, tiny_dirs, case, caplog):
    store = PrefixStore()
    path = tiny4["llama"]
    lora = None
    if case == "lora_dropout":
        lora = LoraConfig(r=4, alpha=8, dropout=0.1, layers=[2, 3])
    elif case == "lora_low":
        lora = LoraConfig(r=4, alpha=8, dropout=0.0, layers=[0, 3])
    elif case == "gemma":
        path, lora = tiny_dirs["gemma3_text"], LoraConfig(r=4, alpha=8, dropout=0.0, layers=[1])
    model = _model(path, store=store, lora=lora)
    base = model.backbone.get_base_model()
    if case == "trainable_low":
        base.layers[0].input_layernorm.weight.requires_grad_(True)
    elif case == "embeddings":
        base.embed_tokens.weight.requires_grad_(True)
    model.train()
    features = model.tokenize(TEXTS)
    with caplog.at_level(logging.INFO, logger="poolattn.backbone.prefix"):
        out = model(**features)
    reason = model.prefix_cache.last_reason
    expected = {"lora_dropout": "dropout p=0.1", "lora_low": "no frozen layer", "trainable_low": "trainable parameter layers.0.",
                "embeddings": "embed_tokens", "gemma": "not verified"}[case]
    assert reason is not None and expected in reason, reason
    assert f"prefix cache off: {reason}" in caplog.text
    assert len(store) == 0 and out.shape == (len(TEXTS), model.embedding_dim)


def test_a_trainable_layer_moves_the_cut_below_it(tiny4):
    """Adapted from layer 1 on (LoRA configured for 2-3): layer 0 alone is cached, still exactly."""
    store = PrefixStore()
    model = _model(tiny4["llama"], store=store)
    model.backbone.get_base_model().layers[1].input_layernorm.weight.requires_grad_(True)
    plan = model.prefix_cache.plan(model)
    assert plan.reason is None and plan.first_adapted == 1
    reference = _model(tiny4["llama"], cache="off")
    np.testing.assert_allclose(model.encode(TEXTS), reference.encode(TEXTS), atol=1e-5)
