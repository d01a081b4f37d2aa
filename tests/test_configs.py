"""Every shipped config loads, validates and plans; the paper preset says what the paper did."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolattn.config import ConfigError, load_config
from poolattn.study.plan import describe, make_plan

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "paper.yaml", "qwen2-0.5b.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_plans(path):
    config = load_config(path)
    plan = make_plan(config)
    seeds = len(config.study.seeds or [None])
    designs = [int(d) for d in config.study.designs]
    assert [r.design.number for r in plan.runs if r.trained] == [d for d in designs for _ in range(seeds)]


def test_paper_dry_run_states_the_papers_setup():
    text = describe(make_plan(load_config(Path("configs/paper.yaml"))))
    for fact in ("Mistral-7B-v0.1", "yixuantt/ir_data", "learning_rate=1e-05", "max_steps=1000",
                 "gradient_accumulation_steps=256", "per_device_train_batch_size=1", "warmup_steps=100",
                 "weight_decay=0.01", "lora: r=16 alpha=32 dropout=0.1", "max_length=512", "STSBenchmark"):
        assert fact in text, fact
    assert "design 1 (eos-causal)" in text and "design 5 (multilayer-bidirectional)" in text


def test_qwen_variant_extends_the_paper():
    paper, qwen = load_config(Path("configs/paper.yaml")), load_config(Path("configs/qwen2-0.5b.yaml"))
    assert qwen.model.backbone == "Qwen/Qwen2-0.5B"
    assert qwen.train == paper.train and qwen.loss == paper.loss and qwen.eval == paper.eval


def test_extends_cycles_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "a.yaml")


def test_paper_variant_changes_only_the_heads_start_rate_and_seeds():
    demo, paper = load_config(Path("configs/demo.yaml")), load_config(Path("configs/demo-paper.yaml"))
    assert (demo.model.pooling.init, paper.model.pooling.init) == ("residual", "paper")
    assert (demo.train.head_learning_rate, paper.train.head_learning_rate) == (1e-4, None)
    assert (demo.study.seeds, paper.study.seeds) == ([42, 43, 44], None)
    assert paper.study.output_dir != demo.study.output_dir
    assert (demo.model.lora.bidirectional_layers, paper.model.lora.bidirectional_layers) == (None, "same")
    strip = {"model": {"pooling": {"init": "residual"}, "lora": {"bidirectional_layers": None}},
             "train": {"head_learning_rate": 1e-4}}
    from poolattn.config import merge

    back = merge(paper, strip)
    assert back.model == demo.model and back.train == demo.train and back.loss == demo.loss and back.data == demo.data


def test_demo_adapts_every_layer_for_designs_4_and_5_only():
    demo = load_config(Path("configs/demo.yaml"))
    assert demo.model.lora.bidirectional_layers is None
    runs = {r.design.number: r.config.model for r in make_plan(demo).runs if r.trained}
    assert all(runs[d].lora_layers == demo.model.lora.layers == list(range(-12, 0)) for d in (1, 2, 3))
    assert runs[4].lora_layers is None and runs[5].lora_layers is None  # every layer


@pytest.mark.parametrize("name, designs, layers", [("demo-bidir.yaml", [1, 4, 5], None),
                                                   ("demo-upper12.yaml", [1, 2, 3, 4, 5], "same")])
def test_demo_variants_change_only_what_they_say(name, designs, layers):
    from poolattn.config import merge

    demo, variant = load_config(Path("configs/demo.yaml")), load_config(Path("configs") / name)
    assert variant.model.lora.bidirectional_layers == layers
    assert [int(d) for d in variant.study.designs] == designs and variant.study.seeds == demo.study.seeds
    assert variant.study.output_dir != demo.study.output_dir
    back = merge(variant, {"model": {"lora": {"bidirectional_layers": None}}})
    assert back.model == demo.model and back.train == demo.train and back.loss == demo.loss and back.data == demo.data
    runs = {r.design.number: r.config.model for r in make_plan(variant).runs if r.trained}
    assert runs[1].lora_layers == demo.model.lora.layers  # the reference keeps the upper 12
    assert (runs[4].lora_layers is None) == (layers is None)
