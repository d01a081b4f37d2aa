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


def test_the_head_gets_its_own_learning_rate_and_the_schedule_scales_both(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, weight_decay=0.1, learning_rate=1e-3, head_learning_rate=4e-3,
                     warmup_steps=2, max_steps=4)
    model = Embedder.from_config(config.model, device="cpu")  # design 4: latent head
    args = to_training_arguments(config)
    optimizer = recipe.build_optimizer(model, args, config.train.head_learning_rate)
    names = {id(p): n for n, p in model.named_parameters()}
    by_rate: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_rate.setdefault(group["lr"], set()).update(names[id(p)] for p in group["params"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert by_rate[4e-3] == {n for n in trainable if n.startswith("pooler.")} != set()
    assert by_rate[1e-3] == {n for n in trainable if "lora_" in n} != set()
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] for p in g["params"]}
    assert any(n.startswith("pooler.") for n in decayed) and not any(re.search(r"bias|norm", n) for n in decayed)
    scheduler = recipe.build_scheduler(optimizer, args, 4)
    rates = []
    for _ in range(4):
        rates.append(sorted({g["lr"] for g in optimizer.param_groups}))
        optimizer.step()
        scheduler.step()
    assert rates[1] == pytest.approx([0.5e-3, 2e-3])  # warmup: half way, the same fraction of each peak
    assert rates[2] == pytest.approx([1e-3, 4e-3])


def test_without_a_head_rate_the_optimizer_keeps_its_two_groups(tiny_llama, tmp_path):
    """A checkpoint's optimizer state (two groups) must still load into a run that sets no head rate."""
    config = _config(tiny_llama, tmp_path, weight_decay=0.1)
    model = Embedder.from_config(config.model, device="cpu")
    assert len(recipe.build_optimizer(model, to_training_arguments(config)).param_groups) == 2


def test_a_head_rate_for_a_design_without_a_head_is_reported(tiny_llama, tmp_path, caplog):
    config = _config(tiny_llama, tmp_path, design=1, max_steps=1, head_learning_rate=1e-2)
    train(config)
    assert "head_learning_rate=0.01 is not used: the eos head" in caplog.text


@pytest.mark.parametrize("max_records", [6, 10])
def test_the_trainer_uses_the_recipe_and_the_eta_counts_its_steps(tiny_llama, tmp_path, monkeypatch, max_records):
    built = []

    def spy_optimizer(model, args, head_learning_rate=None):
        built.append(("optimizer", type(model).__name__))
        return recipe.build_optimizer(model, args, head_learning_rate)

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
