"""Study plans: controlled comparisons, run folders, the baseline, the CLI dry run."""

from __future__ import annotations

import pytest

from poolattn.cli import main
from poolattn.config import Config, merge
from poolattn.study.plan import check_controlled, expand_tasks, make_plan


def test_designs_differ_only_in_pooling_and_attention(tmp_path):
    plan = make_plan(merge(Config(), {"study": {"output_dir": str(tmp_path)}}))
    assert [r.key for r in plan.runs] == ["baseline", "1", "2", "3", "4", "5"]
    assert not plan.runs[0].trained and all(r.trained for r in plan.runs[1:])
    five = plan.runs[-1].config
    assert (five.model.pooling.name, five.model.attention) == ("multilayer", "bidirectional")
    assert five.train.output_dir == str(tmp_path / "runs" / "5" / "model")
    assert {r.config.train.learning_rate for r in plan.runs} == {Config().train.learning_rate}


def test_an_uncontrolled_pair_is_refused(tmp_path):
    plan = make_plan(merge(Config(), {"study": {"output_dir": str(tmp_path), "designs": [1, 2]}}))
    one, two = plan.runs[1], plan.runs[2]
    bad = type(two)(two.key, two.label, two.design, True, merge(two.config, {"train": {"learning_rate": 0.5}}), two.folder)
    with pytest.raises(ValueError, match=r"differ in \['train.learning_rate'\]"):
        check_controlled([one, bad])


def test_duplicate_designs_are_refused():
    with pytest.raises(ValueError, match="twice"):
        make_plan(merge(Config(), {"study": {"designs": [1, "eos-causal"]}}))


def test_other_combinations_are_allowed(tmp_path):
    plan = make_plan(merge(Config(), {"study": {"designs": ["mean-bidirectional", 1], "baseline": None}}))
    assert [r.key for r in plan.runs] == ["mean-bidirectional", "1"]


def test_expand_tasks_keeps_mteb_names_and_expands_the_suite():
    assert expand_tasks(["STSBenchmark"]) == ["STSBenchmark"]
    suite = expand_tasks(["suite"])
    assert len(suite) >= 9 and all(name.startswith("Poolattn") for name in suite)
    assert set(expand_tasks(["retrieval"])) < set(suite)


def test_cli_dry_run_loads_no_model(capsys, monkeypatch):
    import poolattn.model

    monkeypatch.setattr(poolattn.model.Embedder, "from_config", lambda *a, **k: pytest.fail("loaded a model"))
    assert main(["study", "--config", "configs/paper.yaml", "--dry-run", "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert "backbone: mistralai/Mistral-7B-v0.1" in out and "data: yixuantt/ir_data" in out
    assert main(["study", "--design", "1", "--dry-run"]) == 2


def test_cli_seeds_train_every_design_once_per_seed_and_bad_seeds_are_named(capsys):
    assert main(["study", "--config", "configs/demo.yaml", "--designs", "1,3", "--seeds", "7, 8,9", "--dry-run",
                 "--no-estimate"]) == 0
    out = capsys.readouterr().out
    for seed in (7, 8, 9):
        assert f"seed {seed}" in out or f"seed{seed}" in out, out
    assert main(["study", "--config", "configs/demo.yaml", "--seeds", "7,x", "--dry-run", "--no-estimate"]) == 2
    assert "--seeds '7,x'" in capsys.readouterr().err


def test_the_prefix_cache_line_names_the_baseline_where_it_differs_from_the_designs(tmp_path):
    from poolattn.study.plan import describe

    config = merge(Config(), {"model": {"lora": {"layers": [-2, -1], "bidirectional_layers": None}},
                              "study": {"designs": [4], "output_dir": str(tmp_path)}})
    text = describe(make_plan(config))
    assert "untrained baseline (design 1 (eos-causal)): auto: the layers below the lowest LoRA layer" in text
    assert "design 4 (latent-bidirectional): off: LoRA adapts every layer" in text
