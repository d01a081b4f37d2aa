"""benchmarks/study_floor.py counts the tokens a study trains on as the trainer sees them (tiny model, no timing)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from poolattn.config import Config, merge
from tests.training.test_train import _data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study_floor():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.study_floor")


def _config(tiny_llama, tmp_path, **data):
    return merge(Config(), {"model": {"backbone": str(tiny_llama), "max_length": 16, "dtype": "float32"},
                            "data": {"dataset_file_path": str(_data(tmp_path, n=24)), **data},
                            "train": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "seed": 3}})


def _independent_count(tokenizer, records) -> int:
    texts = [*tokenizer.tokenize([r.query for r in records], [r.instruction for r in records]),
             *tokenizer.tokenize([r.positive for r in records]),
             *tokenizer.tokenize([n for r in records for n in r.negatives])]
    return sum(len(t.ids) for t in texts)


def test_training_tokens_cover_each_training_record_once_per_epoch(study_floor, tiny_llama, tmp_path):
    from poolattn.model import Embedder
    from poolattn.training.run import load_training_data, split_holdout

    config = _config(tiny_llama, tmp_path, holdout=4)
    tokenizer = Embedder.from_config(config.model).text_tokenizer
    train, held = split_holdout(load_training_data(config), 4, None)
    epoch = _independent_count(tokenizer, [train[i] for i in range(len(train))])  # 20 records: 5 batches of 4
    counted = study_floor.training_tokens(config, tokenizer, steps=5)
    assert counted["train"] == epoch
    assert study_floor.training_tokens(config, tokenizer, steps=10)["train"] == 2 * epoch
    # the held-out check encodes queries (with instructions) and positives before and after training
    held_once = sum(len(t.ids) for t in [*tokenizer.tokenize([r.query for r in held], [r.instruction for r in held]),
                                         *tokenizer.tokenize([r.positive for r in held])])
    assert counted["holdout"] == 2 * held_once > 0


def test_a_partial_epoch_counts_only_its_batches(study_floor, tiny_llama, tmp_path):
    from poolattn.model import Embedder
    from poolattn.training.recipe import batch_sampler
    from poolattn.training.run import load_training_data, split_holdout

    config = _config(tiny_llama, tmp_path)
    tokenizer = Embedder.from_config(config.model).text_tokenizer
    train, _ = split_holdout(load_training_data(config), 0, None)
    first_two = [i for batch in list(batch_sampler(config, train))[:2] for i in batch]
    assert study_floor.training_tokens(config, tokenizer, steps=2) == {
        "train": _independent_count(tokenizer, [train[i] for i in first_two]), "holdout": 0, "holdout_checks": 0}


@pytest.mark.parametrize(("layers", "depth"), [(None, 30), ([-12, -11, -1], 12), ([0, 29], 30), ([-1], 1)])
def test_backpropagation_depth_follows_the_lowest_lora_layer(study_floor, layers, depth):
    config = merge(Config(), {"model": {"lora": {"layers": layers}}})
    assert study_floor._lora_depth(config, 30) == depth


@pytest.mark.parametrize(("bidirectional_layers", "depth"), [(None, 30), ("same", 12), ([-2, -1], 2)])
def test_backpropagation_depth_follows_the_layers_of_the_runs_attention_mode(study_floor, bidirectional_layers, depth):
    lora = {"layers": list(range(-12, 0)), "bidirectional_layers": bidirectional_layers}
    causal = merge(Config(), {"model": {"attention": "causal", "lora": lora}})
    bidirectional = merge(Config(), {"model": {"attention": "bidirectional", "lora": lora}})
    assert study_floor._lora_depth(causal, 30) == 12
    assert study_floor._lora_depth(bidirectional, 30) == depth


def test_wrong_inputs_are_named_before_any_work(study_floor, tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"not": "a study"}')
    for argv, said in ((["--config", str(tmp_path / "missing.yaml")], "missing.yaml: no such file"),
                       (["--results", str(tmp_path / "results.json")], "not a study's results.json")):
        with pytest.raises(SystemExit) as exit_:
            study_floor.main(argv)
        assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_the_floor_counts_the_cached_layers_once_per_text_and_attention_mode(study_floor, tiny_llama, tmp_path):
    config = merge(_config(tiny_llama, tmp_path, holdout=4), {
        "model": {"lora": {"layers": [-1], "dropout": 0.0}},  # the tiny model's 2 layers: layer 0 is cached
        "train": {"max_steps": 2},
        "eval": {"tasks": ["PoolattnSimLex999WordSimilarity"]},
        "study": {"designs": [1, 2, 4], "output_dir": str(tmp_path / "study")}})
    paths = {}
    for cache in ("auto", "off"):
        paths[cache] = tmp_path / f"{cache}.yaml"
        paths[cache].write_text(merge(config, {"model": {"prefix_cache": cache}}).to_yaml())
    on, off = study_floor.floor(str(paths["auto"])), study_floor.floor(str(paths["off"]))
    assert {k: r["cached_layers"] for k, r in on["runs"].items()} == {"baseline": 1, "1": 1, "2": 1, "4": 1}
    assert all(r["cached_layers"] == 0 for r in off["runs"].values())
    # the same sum reached in another order: equal to rounding (an exact == failed by one ulp on one CI run)
    assert off["train_floor_s"] == pytest.approx(off["train_floor_s_no_cache"], rel=1e-12)
    assert off["eval_floor_s"] == pytest.approx(off["eval_floor_s_no_cache"], rel=1e-12)
    # evaluation: the baseline (causal) and design 4 (bidirectional) run both layers, designs 1 and 2 only the
    # live one: 6 of the 8 layer-passes over the suite's tokens
    assert on["eval_floor_s"] == pytest.approx(0.75 * on["eval_floor_s_no_cache"])
    runs = on["runs"]
    assert [runs[k]["first_train"] for k in ("1", "2", "4")] == [True, False, True]  # design 2 meets 1's batches
    assert runs["1"]["train_floor_s_no_cache"] == runs["2"]["train_floor_s_no_cache"]  # same batches, same depth
    # design 1 runs the cached layer on its batches and on the first held-out check only; design 2 on neither
    assert runs["2"]["train_floor_s"] < runs["1"]["train_floor_s"] < runs["1"]["train_floor_s_no_cache"]


def test_the_floor_fraction_uses_the_floor_of_the_study_as_it_ran(study_floor, tmp_path, monkeypatch, capsys):
    import json

    fixed = {"eval_texts": 1, "eval_tokens_per_run": 1, "runs": {"1": {"train_tokens": 1}},
             "dtype": {"encode": "float32", "train": "float32"},
             "gflops": {"encode": {"float32": 1.0}, "train": {"float32": 1.0}},
             "train_floor_s": 60.0, "eval_floor_s": 60.0, "train_floor_s_no_cache": 120.0, "eval_floor_s_no_cache": 120.0}
    monkeypatch.setattr(study_floor, "floor", lambda path: dict(fixed))
    # a study from before the cache records no model.prefix_cache: its floor is the one without the cache
    for model, fraction in (({}, "1.000"), ({"prefix_cache": "off"}, "1.000"), ({"prefix_cache": "auto"}, "0.500")):
        runs = {"1": {"train": {"seconds": 120.0}, "eval_seconds": 120.0, "identity": {"config": {"model": model}}}}
        path = tmp_path / "results.json"
        path.write_text(json.dumps({"runs": runs}))
        assert study_floor.main(["--config", str(REPO / "configs" / "demo.yaml"), "--results", str(path)]) == 0
        out = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
        assert out["train_floor_fraction"] == fraction == out["eval_floor_fraction"]
