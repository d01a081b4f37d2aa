"""`poolattn train` on a tiny random model: batch size, checkpoints, resume, atomic saves, faults, CLI."""

from __future__ import annotations

import json
import shlex

import pytest
import torch
from safetensors.torch import load_file

from poolattn.cli import main
from poolattn.cli.train import add_config_arguments, config_from_args
from poolattn.config import Config, merge
from poolattn.losses import InfoNCELoss
from poolattn.training.step import NonFiniteLossError
from poolattn.model import Embedder
from poolattn.training.run import train


def _data(tmp_path, n=24):
    rows = [{"id": f"r{i}", "query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}",
             "positive": f"answer {i} text", "negative": f"other thing {i + 1}", "source": "abc"[i % 3]}
            for i in range(n)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tiny_llama, tmp_path, out="run", design=4, **train):
    settings = dict(output_dir=str(tmp_path / out), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                    max_steps=4, save_steps=2, logging_steps=1, learning_rate=1e-2, disable_tqdm=True, seed=7)
    settings.update(train)
    from poolattn.designs import get_design

    return merge(merge(Config(), get_design(design).overrides()), {
        "model": {"backbone": str(tiny_llama), "max_length": 32, "pooling": {"num_latents": 4},
                  "lora": {"r": 4, "alpha": 8, "dropout": 0.1}},
        "data": {"dataset_file_path": str(_data(tmp_path))},
        "loss": {"scale": 20.0},
        "train": settings,
    })


def _weights(folder):
    out = {f"adapter.{k}": v for k, v in load_file(str(folder / "adapter" / "adapter_model.safetensors")).items()}
    if (folder / "pooler.safetensors").is_file():
        out.update({f"pooler.{k}": v for k, v in load_file(str(folder / "pooler.safetensors")).items()})
    return out


def test_contrastive_batch_is_per_device_times_accumulation(tiny_llama, tmp_path, monkeypatch):
    seen = []
    original = InfoNCELoss.forward

    def spy(self, queries, documents, labels, qg=None, dg=None, **kwargs):
        seen.append((queries.shape[0], documents.shape[0]))
        return original(self, queries, documents, labels, qg, dg, **kwargs)

    monkeypatch.setattr(InfoNCELoss, "forward", spy)
    train(_config(tiny_llama, tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=3, max_steps=2))
    # 2 per device x 3 accumulation x 1 process = 6 queries; columns = 6 positives + 6 hard negatives
    assert seen == [(6, 12), (6, 12)]


def test_checkpoints_load_keep_the_limit_and_loss_falls(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, max_steps=6, save_steps=2, save_total_limit=2)
    result = train(config)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    for folder in (out, out / "checkpoint-4"):
        model = Embedder.load(folder, device="cpu", backbone=str(tiny_llama))
        assert model.encode(["hello"]).shape == (1, 32)
    summary = json.loads((out / "train_summary.json").read_text())
    losses = [e["loss"] for e in summary["log_history"] if "loss" in e]
    assert result.steps == 6 and len(losses) == 6
    assert all(e["contrastive_batch"] == 4 and e["loss_scale"] == 20.0 for e in summary["log_history"] if "loss" in e)


def test_resume_reproduces_the_uninterrupted_run(tiny_llama, tmp_path, monkeypatch):
    train(_config(tiny_llama, tmp_path, out="straight", max_steps=4, save_steps=2))
    expected = _weights(tmp_path / "straight")

    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt("simulated kill after the step-2 checkpoint")

    import poolattn.training.run as run_module

    config = _config(tiny_llama, tmp_path, out="interrupted", max_steps=4, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run_module.train(config, callbacks=[Kill()])
    assert (tmp_path / "interrupted" / "checkpoint-2").is_dir()
    resumed = merge(config, {"train": {"resume_from_checkpoint": "latest"}})
    train(resumed)
    got = _weights(tmp_path / "interrupted")
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    # negative control: the weights did move during the last two steps
    before = _weights(tmp_path / "interrupted" / "checkpoint-2")
    assert max(float((before[n] - got[n]).abs().max()) for n in got) > 1e-4


def test_a_run_killed_while_saving_keeps_the_previous_checkpoint(tiny_llama, tmp_path, monkeypatch):
    config = _config(tiny_llama, tmp_path, max_steps=4, save_steps=2)
    original = Embedder.save
    calls = {"n": 0}

    def dying_save(self, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the step-4 checkpoint
            (tmp_path / "run" / ".staging").mkdir(exist_ok=True)
            raise KeyboardInterrupt("killed mid-save")
        return original(self, path, **kwargs)

    monkeypatch.setattr(Embedder, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(Embedder, "save", original)
    assert [p.name for p in (tmp_path / "run").glob("checkpoint-*")] == ["checkpoint-2"]
    assert Embedder.load(tmp_path / "run" / "checkpoint-2", device="cpu", backbone=str(tiny_llama)).encode(["x"]).shape == (1, 32)
    result = train(merge(config, {"train": {"resume_from_checkpoint": "latest"}}))
    assert result.steps == 4


def test_non_finite_loss_stops_with_step_and_records(tiny_llama, tmp_path, monkeypatch):
    original = InfoNCELoss.forward
    calls = {"n": 0}

    def nan_on_second(self, *args, **kwargs):
        calls["n"] += 1
        value = original(self, *args, **kwargs)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(InfoNCELoss, "forward", nan_on_second)
    with pytest.raises(NonFiniteLossError, match=r"at step 2 on the batch with records \[r\d+"):
        train(_config(tiny_llama, tmp_path, max_steps=3, save_steps=1))
    calls["n"] = 0
    result = train(_config(tiny_llama, tmp_path, out="skip", max_steps=3, save_steps=1, skip_nonfinite=True))
    assert result.steps == 3
    one, two = _weights(tmp_path / "skip" / "checkpoint-1"), _weights(tmp_path / "skip" / "checkpoint-2")
    for name in one:  # the skipped step left every weight as it was
        assert torch.equal(one[name], two[name]), name
    summary = json.loads((tmp_path / "skip" / "train_summary.json").read_text())
    assert summary["skipped_batches"] == 1


def test_output_dir_of_another_run_is_refused(tiny_llama, tmp_path):
    train(_config(tiny_llama, tmp_path, max_steps=2, save_steps=2))
    with pytest.raises(FileExistsError, match=r"holds a different run \(model.attention: 'bidirectional' -> 'causal'"):
        train(_config(tiny_llama, tmp_path, design=2, max_steps=2))
    with pytest.raises(FileExistsError, match="--resume_from_checkpoint latest"):
        train(_config(tiny_llama, tmp_path, max_steps=2, save_steps=2))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no poolattn run"):
        train(_config(tiny_llama, tmp_path, out="other", max_steps=2))


PAPER_COMMAND = """
    --dataset_name yixuantt/ir_data --max_seq_length 1024 --model_name_or_path mistralai/Mistral-7B-v0.1
    --per_device_train_batch_size 1 --per_device_eval_batch_size 1 --learning_rate 1e-5 --bf16 --max_steps 1000
    --save_steps 100 --save_total_limit 15 --logging_steps 1 --weight_decay 0.01 --torch_dtype bfloat16
    --num_train_epochs 5 --gradient_accumulation_steps 256 --lr_scheduler_type linear --warmup_steps 100
    --output_dir /tmp/out
"""


def test_the_papers_command_line_parses_unchanged():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(["--design", "1", *shlex.split(PAPER_COMMAND)]))
    assert config.model.backbone == "mistralai/Mistral-7B-v0.1" and config.model.max_length == 1024
    assert config.model.dtype == "bfloat16" and config.train.bf16 is True
    assert config.data.dataset_name == "yixuantt/ir_data"
    assert (config.train.learning_rate, config.train.max_steps, config.train.gradient_accumulation_steps) == (1e-5, 1000, 256)
    assert (config.train.save_steps, config.train.save_total_limit, config.train.warmup_steps) == (100, 15, 100)
    assert config.model.pooling.name == "eos" and config.model.attention == "causal"


def test_cli_dry_run_prints_the_resolved_config(capsys):
    assert main(["train", "--design", "5", "--max_steps", "7", "--bf16", "False", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "name: multilayer" in out and "attention: bidirectional" in out and "max_steps: 7" in out
    assert "bf16: false" in out


def test_cli_reports_a_bad_record_without_a_traceback(tiny_llama, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": "c", "positive": ""}\n')
    code = main(["train", "--design", "1", "--model_name_or_path", str(tiny_llama), "--dataset_file_path", str(bad),
                 "--output_dir", str(tmp_path / "o"), "--max_steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:2: field 'positive' is empty" in err and "Traceback" not in err


def test_training_attention_kernel_applies_to_training_only(tiny_llama, tmp_path, monkeypatch):
    from poolattn.training.step import ContrastiveStep

    seen = []
    original = ContrastiveStep.__call__

    def spy(self, model, batch, **kwargs):
        seen.append(model.backbone.get_base_model().config._attn_implementation)
        return original(self, model, batch, **kwargs)

    monkeypatch.setattr(ContrastiveStep, "__call__", spy)
    train(_config(tiny_llama, tmp_path, max_steps=2, attn_implementation="eager"))
    assert seen == ["eager", "eager"]
    loaded = Embedder.load(tmp_path / "run", device="cpu", backbone=str(tiny_llama))
    assert loaded.backbone.config._attn_implementation == "sdpa"


def test_resuming_with_other_settings_or_data_is_refused_with_the_difference(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, max_steps=2, save_steps=1)
    train(config)
    identity = json.loads((tmp_path / "run" / "identity.json").read_text())
    assert identity["config"]["train"]["learning_rate"] == 1e-2 and len(identity["data_sha256"]) == 64
    assert identity["poolattn_version"] and json.loads((tmp_path / "run" / "train_summary.json").read_text())[
        "data_sha256"] == identity["data_sha256"]
    resume = {"train": {"resume_from_checkpoint": "latest", "max_steps": 3}}
    with pytest.raises(FileExistsError, match=r"train.learning_rate: 0.01 -> 0.5"):
        train(merge(config, {**resume, "train": {**resume["train"], "learning_rate": 0.5}}))
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    rows[3]["positive"] = "an edited answer"
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FileExistsError, match=r"data_sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'"):
        train(merge(config, resume))


def test_the_held_out_curve_is_recorded_every_eval_steps_and_ends_on_the_saved_model(tiny_llama, tmp_path):
    from poolattn.study.eta import _holdout_encodes
    from poolattn.training.callbacks import holdout_metrics
    from poolattn.training.run import load_training_data, split_holdout

    config = merge(_config(tiny_llama, tmp_path, max_steps=4, eval_steps=2), {"data": {"holdout": 6}})
    result = train(config)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    curve = summary["holdout"]["curve"]
    assert [point[0] for point in curve] == [0, 2, 4]  # before training, every 2 steps, the last step once
    # the ETA counts the same checks: 2 texts per held-out record per check
    assert _holdout_encodes(config, 4) == 2 * 6 * len(curve)
    assert _holdout_encodes(config, 5) == 2 * 6 * (len(curve) + 1)  # 5 steps: 0, 2, 4 and the last step, 5
    assert curve[0][1:] == [result.holdout["before"]["recall@1"], result.holdout["before"]["mrr"]]
    _, held = split_holdout(load_training_data(config), 6, None)
    saved = holdout_metrics(Embedder.load(tmp_path / "run", device="cpu", backbone=str(tiny_llama)), held)
    assert curve[-1][1:] == pytest.approx([saved["recall@1"], saved["mrr"]], abs=1e-6)
    assert summary["hard_negatives"] == 1.0 and summary["contrastive_batch"] == 4  # every record has one negative
