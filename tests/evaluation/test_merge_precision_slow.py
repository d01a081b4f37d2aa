"""The model the study evaluates is the trained one: its scores match the unmerged adapter model within 1e-3.

Slow: the real offline backbone (SmolLM2-135M) on two small suite tasks (WordSim353, an STS task of single
words, and FOLDOC term retrieval), chosen to keep the run to a few minutes on a CPU. The adapters are given a
LoRA update of the size a short training leaves (checked: it moves the embeddings), then the study's own
evaluation path (`study.run._evaluate_run`, float32 evaluation as on a CPU) is compared with the unmerged model.
In bfloat16 the study's path IS the unmerged model (a fast test in tests/test_model.py checks it bit for bit).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poolattn.config import Config, merge
from poolattn.evaluation import evaluate
from poolattn.model import Embedder
from poolattn.study.plan import make_plan
from poolattn.study.run import _evaluate_run

pytestmark = pytest.mark.slow

TASKS = ["PoolattnWordSim353WordRelatedness", "PoolattnFoldocTermRetrieval"]


def test_the_study_scores_match_the_unmerged_adapter_model(tmp_path):
    config = merge(Config(), {
        "model": {"backbone": "smollm2-135m", "max_length": 64, "lora": {"layers": list(range(-12, 0))}},
        "eval": {"tasks": TASKS, "dtype": "float32"},
        "study": {"designs": [1], "baseline": None, "output_dir": str(tmp_path / "study")},
    })
    run = make_plan(config).runs[0]
    model = Embedder.from_config(run.config.model, device="cpu")
    bare = model.encode(["a tree", "to compile a program"])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 2e-2)
    assert np.abs(model.encode(["a tree", "to compile a program"]) - bare).max() > 1e-2  # the update matters
    model.save(run.model_dir)

    study_scores, _, _ = _evaluate_run(run, TASKS, progress=False)
    unmerged = Embedder.load(run.model_dir, device="cpu", dtype="float32", merge_lora=False)
    assert hasattr(unmerged.backbone, "peft_config")
    reference = evaluate(unmerged, TASKS, tmp_path / "unmerged", show_progress=False, model_name="unmerged")
    for task in TASKS:
        assert abs(study_scores[task]["main_score"] - reference[task]["main_score"]) <= 1e-3, task
