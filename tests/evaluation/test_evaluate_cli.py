"""`poolattn evaluate` in process: task listing, a run on the fixture suite, and the errors users see."""

from __future__ import annotations

import json

import pytest

from poolattn.cli import main
from poolattn.evaluation.items import load_run_items


def test_list_tasks_json_parses_with_name_and_category(fixture_suite, capsys):
    assert main(["evaluate", "--list-tasks", "--json", "--suite-dir", str(fixture_suite)]) == 0
    listed = json.loads(capsys.readouterr().out)
    manifest = json.loads((fixture_suite / "manifest.json").read_text())
    assert listed == [{"name": e["name"], "category": e["category"]} for e in manifest]


def test_list_tasks_plain_is_a_table(fixture_suite, capsys):
    assert main(["evaluate", "--list-tasks", "--suite-dir", str(fixture_suite)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "category"]
    assert any(line.split()[:3] == ["FixtureRetrieval", "retrieval", "ndcg_at_10"] for line in lines)


def test_evaluate_random_baseline_on_a_category_writes_results(fixture_suite, tmp_path, capsys):
    code = main(["evaluate", "--model", "random", "--tasks", "retrieval,FixtureSTS", "--output", str(tmp_path),
                 "--suite-dir", str(fixture_suite), "--no-progress"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["FixtureRetrieval", "FixtureSTS"]
    assert sorted(p.name for p in (tmp_path / "mteb").iterdir()) == ["FixtureRetrieval.json", "FixtureSTS.json"]
    items = load_run_items(tmp_path / "items")  # the evidence the bootstrap resamples, beside results.json
    assert sorted(items) == ["FixtureRetrieval", "FixtureSTS"]
    assert items["FixtureSTS"].score() == pytest.approx(results["FixtureSTS"]["main_score"], abs=1e-12)
    out = capsys.readouterr().out
    assert f"{results['FixtureRetrieval']['main_score']:.4f}" in out and "mean by category" in out


def test_unknown_task_fails_before_loading_a_model_with_suggestions(fixture_suite, tmp_path, capsys):
    code = main(["evaluate", "--model", "/no/such/model", "--tasks", "FixtureSTSS", "--output", str(tmp_path),
                 "--suite-dir", str(fixture_suite)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown task 'FixtureSTSS'" in err and "'FixtureSTS'" in err and "--list-tasks" in err
    assert not (tmp_path / "results.json").exists()


def test_offline_mteb_task_prints_one_paragraph_and_no_traceback(fixture_suite, tmp_path, capsys):
    code = main(["evaluate", "--model", "random", "--tasks", "STSBenchmark", "--output", str(tmp_path),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("poolattn evaluate: error:")]
    assert len(message) == 1 and "Hugging Face hub" in message[0] and "--list-tasks" in message[0]


def test_missing_output_is_a_usage_error(capsys):
    assert main(["evaluate", "--model", "random"]) == 2
    assert "evaluate needs --output" in capsys.readouterr().err
