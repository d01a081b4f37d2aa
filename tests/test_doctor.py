"""`poolattn doctor` prints every key as key=value, with values that parse."""

from __future__ import annotations

import pytest

from poolattn.cli import main

NUMBERS = ("threads", "float32_gflops", "bfloat16_gflops", "encode_tokens_per_s", "train_tokens_per_s",
           "train_seconds_per_step")


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLATTN_CACHE", str(tmp_path / "cache"))


def test_doctor_prints_every_key_on_a_tiny_model(tiny_llama, capsys):
    code = main(["doctor", "--backbone", str(tiny_llama), "--texts", "16", "--batch-size", "4", "--steps", "1",
                 "--max-length", "32"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert all(line.count("=") == 1 for line in lines), lines
    values = dict(line.split("=") for line in lines)
    assert set(values) >= {"torch_cpu_capability", "encode_dtype", "train_dtype", *NUMBERS}
    for key in NUMBERS:
        assert float(values[key]) > 0, (key, values[key])
    import torch

    assert values["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert int(values["threads"]) == torch.get_num_threads()
    # hidden size 32: below the size worth timing, auto is float32 for both (the matmuls are still measured)
    assert (values["encode_dtype"], values["train_dtype"], values["dtype_reason"]) == ("float32", "float32",
                                                                                        "small model")
    assert int(values["encode_pass_tokens"]) == 512  # the default: too small a model to time its passes


def test_doctor_measures_a_configs_settings(tiny_llama, tmp_path, capsys):
    """--config: its backbone, lengths and batches (a smoke test: every figure is there and positive)."""
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{backbone: {tiny_llama}, max_length: 24, dtype: bfloat16, lora: {{layers: [-1]}}}}\n"
                      "train: {per_device_train_batch_size: 4, bf16: true}\neval: {batch_size: 8}\n")
    assert main(["doctor", "--config", str(config), "--texts", "16", "--steps", "1"]) == 0
    values = dict(line.split("=") for line in capsys.readouterr().out.splitlines() if line)
    for key in NUMBERS:
        assert float(values[key]) > 0, (key, values[key])
