"""The frozen-prefix cache on the real backbone (SmolLM2-135M, offline copy): two suite tasks score the same."""

from __future__ import annotations

import pytest
import torch

from poolattn.backbone.prefix import PrefixCache
from poolattn.backbone.prefix_store import PrefixStore
from poolattn.config import Config, merge
from poolattn.designs import get_design
from poolattn.evaluation import evaluate
from poolattn.model import Embedder

# two of the cheapest suite tasks (about 1.1k and 7.4k tokens), one STS and one classification probe
TASKS = ["PoolattnWordSim353WordRelatedness", "PoolattnTrecQuestionClassification"]
DEMO_LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "layers": list(range(-12, 0))}


@pytest.mark.slow
@pytest.mark.parametrize("design", [3, 4])
def test_suite_scores_are_the_same_with_and_without_the_cache(tmp_path, design):
    config = merge(merge(Config(), get_design(design).overrides()),
                   {"model": {"backbone": "smollm2-135m", "dtype": "float32", "max_length": 64, "lora": DEMO_LORA}})
    model = Embedder.from_config(config.model, device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a trained-looking model: the adapted layers differ from the base
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.merge_lora()  # as the study evaluates: adapters folded in, the cut read from model.lora.layers
    store = PrefixStore()
    model.prefix_cache = PrefixCache(store)
    cached = evaluate(model, TASKS, tmp_path / "cached", show_progress=False)
    assert model.prefix_cache.plan(model).first_adapted == 18 and store.stats.misses > 0
    model.prefix_cache = None
    full = evaluate(model, TASKS, tmp_path / "full", show_progress=False)
    for task in TASKS:
        assert cached[task]["main_score"] == pytest.approx(full[task]["main_score"], abs=1e-5), task
