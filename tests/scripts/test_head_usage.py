"""scripts/head_usage.py measures what a residual-start head adds, on the run's own held-out records (tiny model)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from poolattn.config import Config, merge
from poolattn.designs import get_design
from poolattn.model import Embedder
from poolattn.training.callbacks import retrieval_metrics
from poolattn.training.run import load_training_data, split_holdout, train

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "head_usage.py"


@pytest.fixture(scope="module")
def head_usage():
    spec = importlib.util.spec_from_file_location("head_usage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(tiny_llama, tmp_path, design, init, head_rate):
    rows = [{"query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}", "positive": f"answer {i} text",
             "negative": f"other thing {i + 1}"} for i in range(24)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = merge(merge(Config(), get_design(design).overrides()), {
        "model": {"backbone": str(tiny_llama), "max_length": 32, "pooling": {"num_latents": 4, "init": init}},
        "data": {"dataset_file_path": str(data), "holdout": 8},
        "train": {"output_dir": str(tmp_path / f"d{design}-{init}"), "per_device_train_batch_size": 4,
                  "max_steps": 3, "learning_rate": 1e-2, "head_learning_rate": head_rate, "disable_tqdm": True,
                  "logging_steps": 1, "save_steps": 100, "seed": 3},
    })
    train(config)
    return config, Path(config.train.output_dir)


def test_the_correction_and_the_retrieval_without_it_are_what_the_model_gives(head_usage, tiny_llama, tmp_path):
    config, run = _train(tiny_llama, tmp_path, 4, "residual", 0.5)
    row = head_usage.measure(run, "float32", str(tiny_llama))
    _, held = split_holdout(load_training_data(config), 8, None)
    assert row["texts"] == 2 * len(held)  # queries and positives
    model = Embedder.load(run, dtype="float32", backbone=str(tiny_llama))
    queries, instructions, positives = [r.query for r in held], [r.instruction for r in held], [r.positive for r in held]

    def pooled():  # (queries + positives, D) before normalisation, and the unit rows of each
        q = model.encode(queries, instruction=instructions, normalize=False, convert_to="torch").double()
        d = model.encode(positives, normalize=False, convert_to="torch").double()
        return torch.cat([q, d]), model.encode(queries, instruction=instructions), model.encode(positives)

    out, q_out, d_out = pooled()
    assert model.pooler.start.delta.weight.abs().max() > 0  # the head rate moved W off zero
    with torch.no_grad():
        model.pooler.start.delta.weight.zero_()
    base, q_base, d_base = pooled()
    correction = out - base
    assert row["correction_over_base"] == pytest.approx(float((correction.norm(dim=1) / base.norm(dim=1)).mean()),
                                                        rel=1e-5) and row["correction_over_base"] > 1e-3
    shared = float(correction.mean(dim=0).norm() ** 2 / (correction.norm(dim=1) ** 2).mean())
    assert row["shared_fraction"] == pytest.approx(shared, rel=1e-4)
    assert row["cos_out_base"] == pytest.approx(float(torch.cosine_similarity(out, base).mean()), abs=1e-6)
    assert row["recall@1"] == pytest.approx(retrieval_metrics(q_out, d_out)["recall@1"])
    without = retrieval_metrics(q_base, d_base)
    assert (row["recall@1_without_correction"], row["mrr_without_correction"]) == pytest.approx(
        (without["recall@1"], without["mrr"]))


def test_an_untouched_head_adds_nothing_and_a_paper_start_is_skipped(head_usage, tiny_llama, tmp_path, capsys):
    _, run = _train(tiny_llama, tmp_path, 4, "residual", 0.0)  # head rate 0: W stays exactly zero
    row = head_usage.measure(run, "float32", str(tiny_llama))
    assert row["correction_over_base"] == 0.0 and row["cos_out_base"] == pytest.approx(1.0)
    assert (row["recall@1"], row["mrr"]) == (row["recall@1_without_correction"], row["mrr_without_correction"])
    _, paper = _train(tiny_llama, tmp_path, 2, "paper", None)
    assert "skipped" in head_usage.measure(paper, "float32", str(tiny_llama))
    out = tmp_path / "usage.json"
    assert head_usage.main([str(run), str(paper), "--dtype", "float32", "--backbone", str(tiny_llama),
                            "--out", str(out)]) == 0
    assert [("skipped" in r) for r in json.loads(out.read_text())] == [False, True]
    assert "skipped" in capsys.readouterr().out
    study = tmp_path / "study"
    shutil.copytree(run, study / "runs" / "4-seed3" / "model")
    (study / "runs" / "baseline").mkdir()  # an untrained run has no model folder: not listed
    assert head_usage.main([str(study), "--dtype", "float32", "--backbone", str(tiny_llama), "--out", str(out)]) == 0
    assert [r["run"] for r in json.loads(out.read_text())] == ["4-seed3"]
    with pytest.raises(SystemExit, match="neither a trained model folder"):
        head_usage.main([str(tmp_path / "nowhere")])
    assert row["texts"] == 16  # 8 held-out queries and their 8 positives
