"""`mteb.evaluate(poolattn.to_mteb(model), tasks)` directly: mteb's own cache and files, poolattn's scores."""

from __future__ import annotations

import json

import mteb
import pytest
import torch
from mteb.cache import ResultCache

import poolattn
from poolattn.cli import main
from poolattn.config import ModelConfig, PoolingConfig
from poolattn.evaluation.tasks import get_tasks
from poolattn.model import Embedder
from tests.test_model import _perturb_lora


@pytest.fixture(scope="module")
def saved(tiny_llama, tmp_path_factory):
    # Character tokens: max_length must hold the instruction prefix and the text.
    model = Embedder.from_config(ModelConfig(backbone=str(tiny_llama), pooling=PoolingConfig(name="mean"),
                                             attention="bidirectional", max_length=256), device="cpu")
    _perturb_lora(model)
    path = tmp_path_factory.mktemp("to_mteb") / "model"
    model.save(path)
    return path


@pytest.mark.parametrize("task_name", ["FixtureRetrieval", "FixtureSTS"])
def test_mteb_evaluate_gives_the_score_of_poolattn_evaluate(saved, tiny_llama, fixture_suite, tmp_path, task_name,
                                                          capsys):
    # the saved model names a local backbone path: loading it needs that path passed again
    assert main(["evaluate", "--model", str(saved), "--backbone", str(tiny_llama), "--tasks", task_name,
                 "--output", str(tmp_path / "cli"), "--suite-dir", str(fixture_suite), "--no-progress"]) == 0
    expected = json.loads((tmp_path / "cli" / "results.json").read_text())[task_name]["main_score"]

    model = Embedder.load(saved, device="cpu", backbone=str(tiny_llama))
    encoder = poolattn.to_mteb(model, suite_dir=fixture_suite)
    cache = ResultCache(tmp_path / "mteb-cache")
    result = mteb.evaluate(encoder, get_tasks([task_name], suite_dir=fixture_suite), cache=cache,
                           show_progress_bar=False)
    score = result.task_results[0].get_score()
    assert score == pytest.approx(expected, abs=1e-6)
    # mteb's own result file, under the model's name and weight fingerprint
    files = list((tmp_path / "mteb-cache").rglob(f"{task_name}.json"))
    assert len(files) == 1 and encoder.mteb_model_meta.revision in str(files[0])


def test_model_meta_describes_the_model(saved, tiny_llama):
    model = Embedder.load(saved, device="cpu", max_length=100, backbone=str(tiny_llama))
    meta = poolattn.to_mteb(model).mteb_model_meta
    assert meta.name == "poolattn/mean-bidirectional"
    assert meta.embed_dim == 32 and meta.max_tokens == 100
    assert meta.n_parameters == sum(p.numel() for p in model.parameters())
    assert poolattn.to_mteb(model).instruction_template == model.config.instruction_template
    # the revision is the weights: another model of the same design gets another one
    other = Embedder.load(saved, device="cpu", backbone=str(tiny_llama))
    assert poolattn.to_mteb(other).mteb_model_meta.revision == meta.revision
    with torch.no_grad():
        next(other.backbone.parameters()).add_(1.0)
    assert poolattn.to_mteb(other).mteb_model_meta.revision != meta.revision
