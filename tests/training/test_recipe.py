"""The training recipe's parts: one batch arithmetic, one optimizer and schedule for the Trainer and the timing."""

from __future__ import annotations

import re

import pytest

import poolattn.speed
import poolattn.training.trainer
from poolattn.config import merge
from poolattn.model import Embedder
from poolattn.study.eta import _planned_steps
from poolattn.training import recipe
from poolattn.training.run import load_training_data, train
from poolattn.training.trainer import to_training_arguments
from tests.training.test_train import _config


def test_a_process_gets_per_device_times_accumulation_records_in_one_trainer_batch(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, per_device_train_batch_size=3, gradient_accumulation_steps=4)
    args = to_training_arguments(config)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (12, 1)
    batches = list(recipe.batch_sampler(config, load_training_data(config)))
    assert [len(b) for b in batches] == [12, 12]  # the 24 records of the test data
    assert recipe.contrastive_batch(config, world_size=2) == 24
    per_device = merge(config, {"loss": {"contrastive_batch": "per_device"}})
    assert recipe.contrastive_batch(per_device, world_size=2) == 3


def test_biases_and_norms_get_no_weight_decay_and_frozen_weights_no_optimizer(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, weight_decay=0.1, learning_rate=3e-3)
    model = Embedder.from_config(config.model, device="cpu")
    optimizer = recipe.build_optimizer(model, to_training_arguments(config))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    exempt = {n for n in trainable if re.search(r"bias|norm", n)}
    assert exempt and groups[0.0] == exempt  # the latent head's LayerNorms and biases
    assert groups[0.1] == trainable - exempt and any("lora_" in n for n in groups[0.1])
    assert all(g["lr"] == 3e-3 for g in optimizer.param_groups)


@pytest.mark.parametrize("max_records", [6, 10])
def test_the_trainer_uses_the_recipe_and_the_eta_counts_its_steps(tiny_llama, tmp_path, monkeypatch, max_records):
    built = []

    def spy_optimizer(model, args):
        built.append(("optimizer", type(model).__name__))
        return recipe.build_optimizer(model, args)

    def spy_scheduler(optimizer, args, steps):
        built.append(("scheduler", steps))
        return recipe.build_scheduler(optimizer, args, steps)

    monkeypatch.setattr(poolattn.training.trainer, "build_optimizer", spy_optimizer)
    monkeypatch.setattr(poolattn.training.trainer, "build_scheduler", spy_scheduler)
    config = merge(_config(tiny_llama, tmp_path, max_steps=-1, num_train_epochs=1, save_steps=100),
                   {"data": {"max_records": max_records}})
    planned = _planned_steps(config)
    assert planned == -(-max_records // 4)  # records / (2 per device x 2 accumulation), rounded up
    assert train(config).steps == planned
    assert built == [("optimizer", "Embedder"), ("scheduler", planned)]


def test_the_timed_steps_are_the_recipes(tiny_llama, tmp_path, monkeypatch):
    built = []

    def spy_scheduler(optimizer, args, steps):
        built.append((sorted(g["weight_decay"] for g in optimizer.param_groups), steps))
        return recipe.build_scheduler(optimizer, args, steps)

    monkeypatch.setattr(poolattn.speed, "build_scheduler", spy_scheduler)
    config = _config(tiny_llama, tmp_path, weight_decay=0.1, max_steps=5)
    rate = poolattn.speed.time_train_steps(config, steps=1, warmup=0)
    assert built == [([0.0, 0.1], 5)]
    assert rate.items == 1 and rate.tokens > 0
