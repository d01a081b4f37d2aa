"""evaluate(): results.json schema, score ranges, a real comparison against the random control, determinism,
and the hub-unreachable boundary."""

from __future__ import annotations

import json

import pytest

from poolattn.evaluation.baselines import RandomEncoder
from poolattn.evaluation.run import HubUnreachableError, evaluate
from tests.evaluation.encoders import FIXTURE_SUITE, HashingEncoder

CATEGORIES = {"retrieval", "reranking", "sts", "classification", "clustering", "pair_classification"}


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    """Hashing and random encoders on the whole fixture suite, written to disk (run once per module)."""
    out = tmp_path_factory.mktemp("eval")
    results = {}
    for label, encoder in (("hashing", HashingEncoder()), ("random", RandomEncoder(dim=256, seed=0))):
        results[label] = evaluate(
            encoder, ["suite"], out / label, suite_dir=FIXTURE_SUITE, show_progress=False, model_name=label
        )
    return out, results


def test_results_json_matches_the_returned_summary_and_schema(suite_results):
    out, results = suite_results
    on_disk = json.loads((out / "hashing" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results["hashing"]))
    assert set(on_disk) == {
        "FixtureRetrieval", "FixtureReranking", "FixtureSTS", "FixtureClassification", "FixtureClustering",
        "FixturePairClassification",
    }
    for name, result in on_disk.items():
        assert set(result) == {"main_score", "main_score_name", "category", "scores", "evaluation_seconds"}, name
        assert result["category"] in CATEGORIES
        assert isinstance(result["main_score"], float) and result["evaluation_seconds"] >= 0
        assert all(isinstance(v, float) for v in result["scores"].values())
        assert (out / "hashing" / "mteb" / f"{name}.json").is_file()


def test_main_score_is_the_tasks_main_metric_and_in_range(suite_results):
    _, results = suite_results
    main_metric = {"retrieval": "ndcg_at_10", "reranking": "map_at_1000", "sts": "cosine_spearman",
                   "classification": "accuracy", "clustering": "v_measure", "pair_classification": "max_ap"}
    for label in ("hashing", "random"):
        for name, result in results[label].items():
            assert result["main_score_name"] == main_metric[result["category"]], (label, name)
            assert result["main_score"] == result["scores"][result["main_score_name"]], (label, name)
            low = -1.0 if result["category"] == "sts" else 0.0  # a correlation can be negative
            assert low <= result["main_score"] <= 1.0, (label, name)


def test_mteb_result_files_hold_the_same_main_score(suite_results):
    out, results = suite_results
    saved = json.loads((out / "random" / "mteb" / "FixtureRetrieval.json").read_text())
    assert saved["task_name"] == "FixtureRetrieval"
    assert saved["scores"]["test"][0]["main_score"] == pytest.approx(results["random"]["FixtureRetrieval"]["main_score"], abs=1e-6)


def test_word_matching_beats_the_random_control_where_words_decide(suite_results):
    _, results = suite_results
    hashing, random = results["hashing"], results["random"]
    for name in ("FixtureRetrieval", "FixtureReranking", "FixturePairClassification", "FixtureClassification"):
        assert hashing[name]["main_score"] > random[name]["main_score"] + 0.2, name
    assert hashing["FixtureSTS"]["main_score"] > random["FixtureSTS"]["main_score"]


def test_rerun_reproduces_every_score(suite_results, fixture_suite, hashing_encoder):
    _, results = suite_results
    again = evaluate(hashing_encoder, ["suite"], None, suite_dir=fixture_suite, show_progress=False)
    for name, result in results["hashing"].items():
        for metric, value in result["scores"].items():
            assert again[name]["scores"][metric] == pytest.approx(value, abs=1e-4), (name, metric)


def test_rerun_into_the_same_folder_is_not_skipped(fixture_suite, tmp_path, hashing_encoder):
    first = evaluate(hashing_encoder, ["FixtureSTS"], tmp_path, suite_dir=fixture_suite, show_progress=False)
    second = evaluate(RandomEncoder(), ["FixtureSTS"], tmp_path, suite_dir=fixture_suite, show_progress=False)
    assert first["FixtureSTS"]["main_score"] != second["FixtureSTS"]["main_score"]
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(second))


def test_task_objects_and_names_can_be_mixed(fixture_suite, hashing_encoder):
    from poolattn.evaluation.tasks import get_tasks

    (sts,) = get_tasks(["FixtureSTS"], suite_dir=fixture_suite)
    results = evaluate(hashing_encoder, [sts, "FixtureSTS", "FixturePairClassification"], None,
                       suite_dir=fixture_suite, show_progress=False)
    assert list(results) == ["FixtureSTS", "FixturePairClassification"]


def test_bad_batch_size_is_refused(fixture_suite, hashing_encoder):
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        evaluate(hashing_encoder, ["FixtureSTS"], None, batch_size=0, suite_dir=fixture_suite)


def test_real_mteb_task_offline_gives_the_hub_message_not_a_traceback(fixture_suite, hashing_encoder):
    # The hub is really unreachable here (tests also set HF_HUB_OFFLINE=1, so this fails fast).
    with pytest.raises(HubUnreachableError) as info:
        evaluate(hashing_encoder, ["STSBenchmark"], None, suite_dir=fixture_suite, show_progress=False)
    message = str(info.value)
    assert "'STSBenchmark' needs its data from the Hugging Face hub" in message
    assert "poolattn evaluate --list-tasks" in message and "\n" not in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_simulated_connection_failure_is_translated_and_keeps_the_cause(monkeypatch, hashing_encoder):
    from poolattn.evaluation.tasks import get_tasks

    (task,) = get_tasks(["SciFact"])
    original = OSError("[Errno -2] Name or service not known")

    def fail(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'mteb/scifact' on the Hub") from original

    monkeypatch.setattr(task, "load_data", fail)
    with pytest.raises(HubUnreachableError, match="'SciFact' needs its data") as info:
        evaluate(hashing_encoder, [task], None, show_progress=False)
    assert info.value.__cause__.__cause__ is original


def test_other_failures_of_real_tasks_are_not_disguised_as_hub_errors(monkeypatch, hashing_encoder):
    from poolattn.evaluation.tasks import get_tasks

    (task,) = get_tasks(["SciFact"])
    monkeypatch.setattr(task, "load_data", lambda *a, **k: (_ for _ in ()).throw(KeyError("corpus")))
    with pytest.raises(KeyError, match="corpus"):
        evaluate(hashing_encoder, [task], None, show_progress=False)


def test_offline_results_survive_a_later_hub_failure(fixture_suite, tmp_path, hashing_encoder):
    with pytest.raises(HubUnreachableError):
        evaluate(hashing_encoder, ["FixtureSTS", "SciFact"], tmp_path, suite_dir=fixture_suite, show_progress=False)
    assert list(json.loads((tmp_path / "results.json").read_text())) == ["FixtureSTS"]


def test_a_poolattn_embedder_runs_the_fixture_suite_through_the_adapter(tiny_llama, fixture_suite):
    from poolattn.config import ModelConfig
    from poolattn.model import Embedder

    # Character tokens: max_length must hold the instruction prefix and the text.
    model = Embedder.from_config(ModelConfig(backbone=str(tiny_llama), max_length=256), device="cpu")
    first = evaluate(model, ["suite"], None, suite_dir=fixture_suite, show_progress=False)
    again = evaluate(model, ["suite"], None, suite_dir=fixture_suite, show_progress=False)
    assert len(first) == 6
    for name, result in first.items():
        low = -1.0 if result["category"] == "sts" else 0.0
        assert low <= result["main_score"] <= 1.0, name
        assert again[name]["main_score"] == pytest.approx(result["main_score"], abs=1e-4), name
