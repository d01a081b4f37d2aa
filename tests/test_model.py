"""Embedder on tiny random backbones: designs, encode, batching, save/load, LoRA merge, parameter counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from poolattn.config import ModelConfig, PoolingConfig
from poolattn.designs import DESIGNS, get_design
from poolattn.model import Embedder, resolve_model
from tests.conftest import FAMILIES

TEXTS = ["the cat sat on the mat", "a dog", "", "stocks fell sharply on tuesday after the report", "x" * 90]


def _embedder(path, design=1, **overrides) -> Embedder:
    design = get_design(design)
    config = ModelConfig(backbone=str(path), attention=design.attention,
                         pooling=PoolingConfig(name=design.pooling, num_latents=4), max_length=64, **overrides)
    return Embedder.from_config(config, device="cpu")


def _perturb_lora(embedder: Embedder, seed: int = 0) -> None:
    """LoRA B starts at zero (a no-op); give it values so adapter bugs become visible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in embedder.backbone.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_encode_unit_rows_and_batched_equals_single(tiny_dirs, family, design):
    model = _embedder(tiny_dirs[family], design)
    _perturb_lora(model)
    batched = model.encode(TEXTS, batch_size=3)
    assert batched.shape == (len(TEXTS), model.embedding_dim) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    single = np.stack([model.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=2e-5)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_padding_side_does_not_change_embeddings(tiny_llama, design, padding_side):
    right = _embedder(tiny_llama, design, padding_side="right")
    other = _embedder(tiny_llama, design, padding_side=padding_side)
    np.testing.assert_allclose(other.encode(TEXTS, batch_size=5), right.encode(TEXTS, batch_size=5), atol=2e-5)


def test_encode_keeps_input_order(tiny_llama):
    model = _embedder(tiny_llama, 4)
    forward = model.encode(TEXTS, batch_size=2)
    backward = model.encode(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(forward, backward[::-1], atol=2e-5)
    assert not np.allclose(forward[0], forward[1], atol=1e-3)  # and the texts differ


def test_instruction_changes_query_embedding(tiny_llama):
    model = _embedder(tiny_llama, 1)
    plain = model.encode(["a dog"])
    instructed = model.encode(["a dog"], instruction="find pets")
    assert np.abs(plain - instructed).max() > 1e-4


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_save_then_load_gives_identical_embeddings(tiny_llama, design, tmp_path):
    model = _embedder(tiny_llama, design)
    _perturb_lora(model)
    expected = model.encode(TEXTS)
    model.save(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").rglob("*")}
    assert {"poolattn.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)  # safetensors only
    loaded = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama))
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-6)


@pytest.mark.parametrize("design", [1, 5])
def test_merged_save_loads_without_adapter_and_matches(tiny_llama, design, tmp_path):
    model = _embedder(tiny_llama, design)
    _perturb_lora(model)
    expected = model.encode(TEXTS)
    model.save(tmp_path / "merged", merge_lora=True)
    assert not (tmp_path / "merged" / "adapter").exists()
    assert (tmp_path / "merged" / "backbone" / "model.safetensors").is_file()
    np.testing.assert_allclose(model.encode(TEXTS), expected, atol=0)  # saving did not touch the live model
    loaded = Embedder.load(tmp_path / "merged", device="cpu")
    assert not hasattr(loaded.backbone, "peft_config")
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-5)
    if get_design(design).attention == "bidirectional":
        saved = json.loads((tmp_path / "merged" / "backbone" / "config.json").read_text())
        assert saved["is_causal"] is False


def test_lora_changes_the_output_and_its_merge_reproduces_it(tiny_llama, tmp_path):
    """Negative control for the save tests: with non-zero LoRA the embeddings differ from the bare backbone."""
    model = _embedder(tiny_llama, 1)
    bare = model.encode(TEXTS)
    _perturb_lora(model)
    adapted = model.encode(TEXTS)
    assert np.abs(bare - adapted).max() > 1e-3
    merged = model.backbone.merge_and_unload()
    model.backbone = merged
    np.testing.assert_allclose(model.encode(TEXTS), adapted, atol=1e-5)


def test_parameter_counts_separate_lora_and_head(tiny_llama):
    eos = _embedder(tiny_llama, 1).parameter_counts()
    latent = _embedder(tiny_llama, 2).parameter_counts()
    # LoRA r16 on 7 projections of 2 layers, hidden 32, kv 16, mlp 64: r * (in + out) per projection
    per_layer = 16 * ((32 + 32) * 2 + (32 + 16) * 2 + (32 + 64) * 2 + (64 + 32))
    assert eos["lora"] == latent["lora"] == 2 * per_layer
    assert eos["head"] == 0 and latent["head"] > 0
    assert eos["backbone_frozen"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_layers_restrict_the_adapters(tiny_dirs, family, tmp_path):
    """`lora.layers=[-1]` adapts the last layer only, on every family, and survives save/load."""
    from poolattn.config import LoraConfig

    model = _embedder(tiny_dirs[family], 1, lora=LoraConfig(r=4, alpha=8, layers=[-1]))
    adapted = {name for name, _ in model.backbone.named_parameters() if "lora_" in name}
    last = model.backbone.config.num_hidden_layers - 1
    assert adapted and all(f"layers.{last}." in name for name in adapted), sorted(adapted)
    everywhere = _embedder(tiny_dirs[family], 1, lora=LoraConfig(r=4, alpha=8))
    assert everywhere.parameter_counts()["lora"] == model.backbone.config.num_hidden_layers * \
        model.parameter_counts()["lora"]
    _perturb_lora(model)
    model.save(tmp_path / "m")
    loaded = Embedder.load(tmp_path / "m", backbone=str(tiny_dirs[family]))
    np.testing.assert_allclose(loaded.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def test_bidirectional_designs_take_their_own_lora_layers(tiny_llama):
    """`lora.bidirectional_layers` applies under bidirectional attention only; null adapts every layer."""
    from poolattn.config import LoraConfig

    lora = LoraConfig(r=4, alpha=8, layers=[-1], bidirectional_layers=None)

    def adapted_layers(model):
        return {int(name.split("layers.")[1].split(".")[0]) for name, _ in model.backbone.named_parameters()
                if "lora_" in name}

    causal, bidirectional = _embedder(tiny_llama, 2, lora=lora), _embedder(tiny_llama, 4, lora=lora)
    layers = causal.backbone.config.num_hidden_layers
    assert adapted_layers(causal) == {layers - 1}
    assert adapted_layers(bidirectional) == set(range(layers))


def test_from_design_is_seeded(tiny_llama):
    a = _embedder(tiny_llama, 2).encode(TEXTS[:2])
    b = _embedder(tiny_llama, 2).encode(TEXTS[:2])
    np.testing.assert_array_equal(a, b)


def test_resolve_model_accepts_a_folder_or_a_design(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, 2)
    model.save(tmp_path / "m")
    assert isinstance(resolve_model(tmp_path / "m", device="cpu", backbone=str(tiny_llama)), Embedder)
    untrained = resolve_model("latent-causal", backbone=str(tiny_llama), device="cpu")
    assert untrained.config.pooling.name == "latent"
    with pytest.raises(ValueError, match="neither a saved model folder nor a design"):
        resolve_model("not-a-design", backbone=str(tiny_llama))


def test_load_of_a_wrong_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved poolattn model"):
        Embedder.load(tmp_path)


def test_bad_items_name_their_index(tiny_llama):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        _embedder(tiny_llama, 1).encode(["fine", None])


def test_a_low_precision_load_evaluates_the_trained_adapters_unmerged(tiny_llama, tmp_path):
    """bfloat16: the default load keeps LoRA as a side path (the model as trained); float32 merges exactly."""
    model = _embedder(tiny_llama, 1)
    _perturb_lora(model)
    model.save(tmp_path / "m")
    default = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), dtype="bfloat16")
    unmerged = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), dtype="bfloat16", merge_lora=False)
    merged = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), dtype="bfloat16", merge_lora=True)
    assert hasattr(default.backbone, "peft_config") and not hasattr(merged.backbone, "peft_config")
    np.testing.assert_array_equal(default.encode(TEXTS), unmerged.encode(TEXTS))
    # negative control: the bfloat16 merge rounds the update away and moves the embeddings
    assert np.abs(merged.encode(TEXTS) - unmerged.encode(TEXTS)).max() > 1e-3
    exact = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama))  # float32: merged, equal to the side path
    assert not hasattr(exact.backbone, "peft_config")
    np.testing.assert_allclose(exact.encode(TEXTS), Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), merge_lora=False)
                               .encode(TEXTS), atol=1e-5)


def test_length_batches_respect_the_count_and_the_padded_token_cap():
    from poolattn.model import length_batches

    lengths = [5, 40, 12, 12, 3, 90, 7, 30, 30, 1]
    batches = length_batches(lengths, batch_size=3, max_tokens=60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [i for b in batches for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first, as encode pads least
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= 60  # the 90-token text goes alone
    assert [len(b) for b in batches] == [1, 1, 2, 3, 3]
    assert [len(b) for b in length_batches(lengths, batch_size=4)] == [4, 4, 2]  # no cap: the count alone


def test_a_token_cap_splits_batches_without_changing_embeddings(tiny_llama, monkeypatch):
    model = _embedder(tiny_llama, 3)
    _perturb_lora(model)
    uncapped = model.encode(TEXTS, batch_size=len(TEXTS))
    calls = []
    model.cpu_pass_tokens = 24
    original = model.text_tokenizer.collate
    monkeypatch.setattr(model.text_tokenizer, "collate", lambda items: calls.append(len(items)) or original(items))
    capped = model.encode(TEXTS, batch_size=len(TEXTS))
    assert len(calls) > 1  # the cap did split the passes
    np.testing.assert_allclose(capped, uncapped, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layers", [None, [0, 2, -1]])
@pytest.mark.parametrize("design", [3, 5])
@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3_text"])
def test_a_multilayer_head_summarising_each_layer_as_it_runs_equals_reading_all_hidden_states(
        tiny_dirs, family, design, layers, dtype):
    d = get_design(design)
    model = Embedder.from_config(ModelConfig(
        backbone=str(tiny_dirs[family]), attention=d.attention, max_length=64, dtype=dtype, prefix_cache="off",
        pooling=PoolingConfig(name=d.pooling, num_latents=4, init="paper", layers=layers)), device="cpu")
    _perturb_lora(model)
    model.eval()  # LoRA dropout off: two passes must see the same function
    batch = model.tokenize(TEXTS)
    with torch.no_grad():  # encoding: each layer summarised as it runs
        got = model._pooled_full(**batch)
        out = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch.get("position_ids"), output_hidden_states=True, use_cache=False)
        want = model.pooler(tuple(out.hidden_states), batch["pool_mask"])
    assert torch.equal(got, want)
