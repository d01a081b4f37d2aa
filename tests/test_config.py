"""Config tree: defaults, validation messages, YAML, precedence, designs."""

from __future__ import annotations

import math

import pytest
import torch

from poolattn.config import Config, ConfigError, load_config, merge, unflatten
from poolattn.designs import DESIGNS, get_design
from poolattn.model import Embedder
from poolattn.training.recipe import build_step


def test_the_default_lora_and_loss_scale_are_the_papers_and_reach_the_model_and_the_loss(tiny_llama):
    # read off the built adapters and the built loss, not the dataclass: a field that never reached them fails here
    config = merge(Config(), {"model": {"backbone": str(tiny_llama)}})
    model = Embedder.from_config(config.model, device="cpu")
    lora = model.backbone.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (16, 32, 0.1)  # the paper's LoRA
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    wrapped = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.backbone.named_parameters()
               if ".lora_A" in name}
    assert wrapped == set(lora.target_modules)
    loss = build_step(config, model.text_tokenizer.collate).loss
    # cosines 1 (the positive) and 0.98: at scale 50 the logits are 50 and 49, so the loss is log(1 + e^-1)
    queries = torch.tensor([[1.0, 0.0]])
    documents = torch.tensor([[1.0, 0.0], [0.98, math.sqrt(1 - 0.98**2)]])
    value = loss(queries, documents, torch.tensor([0]))
    assert float(value) == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-5)  # scale 20 would give 0.513


@pytest.mark.parametrize(
    "data,message",
    [
        ({"model": {"attention": "sideways"}}, r"model.attention='sideways' is not allowed; choose one of \['causal', 'bidirectional'\]"),
        ({"model": {"poolng": {}}}, r"unknown key 'config.model.poolng'; did you mean \['pooling'\]"),
        ({"loss": {"scale": -1}}, r"loss.scale=-1 must be a finite number > 0"),
        ({"loss": {"scale": float("inf")}}, r"loss.scale=inf must be a finite number > 0"),
        ({"train": {"learning_rate": float("inf")}}, r"train.learning_rate=inf must be a finite number"),
        ({"train": {"max_grad_norm": float("nan")}}, r"train.max_grad_norm=nan must be a finite number"),
        ({"train": {"num_train_epochs": float("nan")}}, r"train.num_train_epochs=nan must be a finite number"),
        ({"model": {"max_length": 10**18}}, r"model.max_length=1000000000000000000 is over the limit"),
        ({"model": {"lora": {"dropout": 1.5}}}, r"lora.dropout=1.5 must be in \[0, 1\)"),
        ({"train": {"max_steps": 0}}, r"trains nothing"),
        ({"model": {"instruction_template": "no slot"}}, r"must contain '\{instruction\}'"),
        ({"model": {"lora": {"bidirectional_layers": "all"}}},
         r"lora.bidirectional_layers='all' must be a non-empty list of layer numbers .* null \(every layer\), \"same\""),
        ({"model": {"lora": {"layers": []}}}, r"lora.layers=\[\] must be a non-empty list of layer numbers"),
    ],
)
def test_bad_values_fail_early_naming_the_value(data, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(data)


def test_yaml_then_flags_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {pooling: {name: latent, num_latents: 8}}\ntrain: {learning_rate: 0.001}\n")
    config = load_config(path, {"train.learning_rate": 0.5, "model.attention": "bidirectional"})
    assert config.model.pooling.name == "latent" and config.model.pooling.num_latents == 8
    assert config.train.learning_rate == 0.5 and config.model.attention == "bidirectional"


def test_merge_keeps_siblings():
    config = merge(Config(), {"model": {"pooling": {"name": "mean"}}})
    assert config.model.pooling.name == "mean" and config.model.backbone == "smollm2-135m"


def test_unflatten():
    assert unflatten({"a.b.c": 1, "a.d": 2}) == {"a": {"b": {"c": 1}, "d": 2}}


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml.*not valid YAML"):
        load_config(bad)


def test_round_trip_through_yaml(tmp_path):
    config = merge(Config(), get_design(5).overrides())
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize("key,expected", [(1, ("eos", "causal")), ("3", ("multilayer", "causal")),
                                          ("latent-bidirectional", ("latent", "bidirectional")),
                                          ("mean-bidirectional", ("mean", "bidirectional"))])
def test_designs_by_number_or_name(key, expected):
    design = get_design(key)
    assert (design.pooling, design.attention) == expected


def test_the_five_designs_are_the_papers():
    assert {n: (d.pooling, d.attention) for n, d in DESIGNS.items()} == {
        1: ("eos", "causal"), 2: ("latent", "causal"), 3: ("multilayer", "causal"),
        4: ("latent", "bidirectional"), 5: ("multilayer", "bidirectional"),
    }


@pytest.mark.parametrize("bad", [0, 6, "cls-causal", "eos-sideways"])
def test_unknown_design_lists_choices(bad):
    with pytest.raises(ValueError, match="design"):
        get_design(bad)


def test_lora_layers_follow_the_attention_mode():
    causal = Config.from_dict({"model": {"lora": {"layers": [-2, -1]}}}).model
    assert causal.lora_layers == [-2, -1]
    same = Config.from_dict({"model": {"attention": "bidirectional", "lora": {"layers": [-2, -1]}}}).model
    assert same.lora.bidirectional_layers == "same" and same.lora_layers == [-2, -1]  # the default: as lora.layers
    every = Config.from_dict({"model": {"attention": "bidirectional",
                                        "lora": {"layers": [-2, -1], "bidirectional_layers": None}}}).model
    assert every.lora_layers is None
    some = Config.from_dict({"model": {"attention": "bidirectional",
                                       "lora": {"layers": [-2, -1], "bidirectional_layers": [-3, -2, -1]}}}).model
    assert some.lora_layers == [-3, -2, -1]
    assert Config.from_dict({"model": {"lora": {"layers": [-2, -1], "bidirectional_layers": None}}}).model \
        .lora_layers == [-2, -1]  # causal attention ignores bidirectional_layers


def test_one_comma_list_parser_serves_the_config_and_the_command_line():
    from poolattn.config import comma_list

    assert comma_list(" 1, 5,,x ,") == ["1", "5", "x"] and comma_list(" , ") == []
    assert Config.from_dict({"eval": {"tasks": "suite, PoolattnBibleVerseRetrieval"}}).eval.tasks == [
        "suite", "PoolattnBibleVerseRetrieval"]  # the space after the comma no longer reaches the task name
    with pytest.raises(ConfigError, match="eval.tasks is empty"):
        Config.from_dict({"eval": {"tasks": " , "}})


@pytest.mark.parametrize(("written", "expected"), [("off", "off"), ("on", "auto"), ("'off'", "off"), ("auto", "auto")])
def test_a_bare_yaml_off_or_on_for_the_prefix_cache_is_read_as_meant(tmp_path, written, expected):
    path = tmp_path / "c.yaml"
    path.write_text(f"model:\n  prefix_cache: {written}\n")  # YAML 1.1 reads a bare off / on as false / true
    assert load_config(path).model.prefix_cache == expected
