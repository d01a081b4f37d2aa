"""Training precision under `dtype: auto`: the weights follow the training measurement, bf16 autocast follows them."""

from __future__ import annotations

import pytest
import torch

from poolattn.backbone.dtype import DtypeChoice
from poolattn.config import Config, merge
from poolattn.training.recipe import training_precision


def _config(backbone, **train) -> Config:
    return merge(Config(), {"model": {"backbone": str(backbone), "dtype": "auto"}, "train": train})


@pytest.fixture
def bf16_is_faster_for_training(monkeypatch):
    def fake(location, device, purpose="encode", **kwargs):
        return DtypeChoice(purpose, "bfloat16" if purpose == "train" else "float32", "measured")

    monkeypatch.setattr("poolattn.backbone.load.auto_choice", fake)


def test_auto_on_a_float32_machine_trains_wholly_in_float32(tiny_llama):
    # the tiny model is below the size worth timing: auto is float32, and no autocast follows
    assert training_precision(_config(tiny_llama)) == ("float32", False)


def test_auto_on_a_bf16_machine_trains_bf16_weights_under_autocast(tiny_llama, bf16_is_faster_for_training):
    assert training_precision(_config(tiny_llama)) == ("bfloat16", True)
    assert training_precision(_config(tiny_llama, bf16=False)) == ("bfloat16", False)  # explicit wins


def test_the_training_model_gets_the_training_dtype(tiny_llama, bf16_is_faster_for_training):
    from poolattn.model import Embedder

    config = _config(tiny_llama).model
    assert next(Embedder.from_config(config, purpose="train").backbone.parameters()).dtype is torch.bfloat16
    assert next(Embedder.from_config(config).backbone.parameters()).dtype is torch.float32


def test_a_two_step_run_in_float32_learns(tiny_llama, tmp_path):
    """auto resolved to float32: no autocast, float32 weights, and the loss is finite and the LoRA B weights move."""
    import json

    from poolattn.training.run import train

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"query": f"q{i} x", "positive": f"p{i} y", "negative": f"n{i} z"}) + "\n"
                            for i in range(8)))
    config = merge(_config(tiny_llama), {
        "data": {"dataset_file_path": str(data)}, "model": {"pooling": {"name": "mean"}},
        "train": {"output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 4,
                  "learning_rate": 1e-2, "disable_tqdm": True}})
    result = train(config)
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["precision"] == {"weights": "float32", "bf16_autocast": False}
    assert result.steps == 2 and result.final_loss is not None and result.final_loss == result.final_loss
    from safetensors.torch import load_file

    adapter = load_file(str(tmp_path / "out" / "adapter" / "adapter_model.safetensors"))
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b and all(t.dtype is torch.float32 for t in lora_b) and any(t.abs().max() > 0 for t in lora_b)
