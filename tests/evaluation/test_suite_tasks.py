"""Offline suite tasks: manifest validation, payload -> mteb datasets, and name resolution."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from poolattn.evaluation.tasks import (
    SUITE_CATEGORIES,
    UnknownTaskError,
    get_tasks,
    is_offline_task,
    list_offline_tasks,
    read_manifest,
    task_category,
)


def _copy_suite(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(suite: Path, edit) -> None:
    path = suite / "manifest.json"
    entries = json.loads(path.read_text())
    edit(entries)
    path.write_text(json.dumps(entries))


def _write_payload(suite: Path, file: str, payload: dict) -> None:
    with gzip.open(suite / file, "wt", encoding="utf-8") as handle:
        json.dump(payload, handle)


def test_fixture_manifest_lists_one_task_per_suite_category(fixture_suite):
    entries = read_manifest(fixture_suite)
    assert sorted(e.category for e in entries) == sorted(SUITE_CATEGORIES)
    defaults = {e.category: e.main_score for e in entries}
    assert defaults["retrieval"] == "ndcg_at_10" and defaults["sts"] == "cosine_spearman"
    assert [t["name"] for t in list_offline_tasks(fixture_suite)] == [e.name for e in entries]


def test_missing_manifest_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no offline suite at {tmp_path}"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda es: es[0].update(category="ranking"), r"unknown category 'ranking'; choose one of \['retrieval'"),
        (lambda es: es[0].update(main_score="accuracy"), r"main_score 'accuracy' is not a retrieval metric"),
        (lambda es: es[1].update(name=es[0]["name"]), r"must be unique; repeated: \['FixtureRetrieval'\]"),
        (lambda es: es[0].pop("file"), r"lacks \['file'\]"),
    ],
)
def test_bad_manifest_entries_are_refused_with_the_reason(fixture_suite, tmp_path, edit, message):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")
    _edit_manifest(suite, edit)
    with pytest.raises(ValueError, match=message):
        read_manifest(suite)


def test_each_offline_task_is_an_mteb_task_of_its_category(fixture_suite):
    import mteb

    tasks = get_tasks(["suite"], suite_dir=fixture_suite)
    expected_type = {
        "retrieval": "Retrieval", "reranking": "Reranking", "sts": "STS", "classification": "Classification",
        "clustering": "Clustering", "pair_classification": "PairClassification",
    }
    for task in tasks:
        assert isinstance(task, mteb.AbsTask) and is_offline_task(task)
        assert task.metadata.type == expected_type[task_category(task)]
        assert len(task.metadata.revision) == 16  # content hash of the payload
    assert len({type(t) for t in tasks}) == len(tasks)  # one thin class per entry, metadata on the class


def test_payloads_load_into_the_shapes_mteb_evaluates(fixture_suite):
    tasks = {t.metadata.name: t for t in get_tasks(["suite"], suite_dir=fixture_suite)}
    for task in tasks.values():
        task.load_data()

    retrieval = tasks["FixtureRetrieval"].dataset["default"]["test"]
    assert len(retrieval["queries"]) == 10 and len(retrieval["corpus"]) == 20
    assert retrieval["relevant_docs"]["q3"] == {"d3": 1} and retrieval["top_ranked"] is None

    reranking = tasks["FixtureReranking"].dataset["default"]["test"]
    assert reranking["top_ranked"]["q0"] == ["q0-p0", "q0-n0", "q0-n1", "q0-n2"]
    assert reranking["relevant_docs"]["q0"] == {"q0-p0": 1, "q0-n0": 0, "q0-n1": 0, "q0-n2": 0}

    classification = tasks["FixtureClassification"]
    labels = classification.dataset["default"]["train"]["label"]
    assert sorted(set(labels)) == [0, 1, 2]  # "cooking" < "sport" < "weather", shared by both splits
    assert classification.dataset["default"]["test"]["label"][0] == 2  # first test text is about weather
    assert classification.n_experiments == 1  # 6 examples per label <= samples_per_label: draws would repeat

    clustering = tasks["FixtureClustering"]
    assert clustering.max_documents_per_cluster == 30
    assert clustering.dataset["default"]["test"].column_names == ["sentences", "labels"]

    sts = tasks["FixtureSTS"]
    assert (sts.min_score, sts.max_score) == (0, 5)
    pairs = tasks["FixturePairClassification"].dataset["default"]["test"]
    assert sorted(pairs.column_names) == ["labels", "sentence1", "sentence2"]


def test_qrels_pointing_at_missing_documents_fail_loudly(fixture_suite, tmp_path):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")
    _write_payload(suite, "FixtureRetrieval.json.gz",
                   {"queries": {"q0": "a"}, "corpus": {"d0": "b"}, "qrels": {"q0": {"d9": 1}}})
    (task,) = get_tasks(["FixtureRetrieval"], suite_dir=suite)
    with pytest.raises(ValueError, match=r"unknown query ids \[\] or document ids \['d9'\]"):
        task.load_data()


def test_a_payload_rewritten_after_task_creation_is_refused(fixture_suite, tmp_path):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")
    (task,) = get_tasks(["FixtureSTS"], suite_dir=suite)
    _write_payload(suite, "FixtureSTS.json.gz", {"test": {"sentence1": ["a"], "sentence2": ["b"], "score": [1]}})
    with pytest.raises(RuntimeError, match=r"FixtureSTS.json.gz changed after task FixtureSTS was created"):
        task.load_data()


def test_payload_missing_a_split_names_the_file_and_keys(fixture_suite, tmp_path):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")
    _write_payload(suite, "FixtureClassification.json.gz", {"test": {"text": ["a"], "label": [0]}})
    (task,) = get_tasks(["FixtureClassification"], suite_dir=suite)
    with pytest.raises(ValueError, match=r"FixtureClassification.json.gz: a classification payload needs keys"):
        task.load_data()


def test_names_resolve_suite_category_offline_and_mteb_in_order_without_duplicates(fixture_suite):
    tasks = get_tasks(["sts", "FixtureRetrieval", "suite", "STSBenchmark"], suite_dir=fixture_suite)
    names = [t.metadata.name for t in tasks]
    assert names[:2] == ["FixtureSTS", "FixtureRetrieval"]
    assert len(names) == len(set(names)) == 7 and names[-1] == "STSBenchmark"
    assert not is_offline_task(tasks[-1]) and task_category(tasks[-1]) == "sts"


def test_multilingual_mteb_tasks_keep_their_english_subsets():
    (task,) = get_tasks(["AmazonCounterfactualClassification"])
    assert task.hf_subsets and all(subset.startswith("en") for subset in task.hf_subsets)


def test_unknown_task_lists_close_matches_and_how_to_list_tasks(fixture_suite):
    with pytest.raises(UnknownTaskError) as info:
        get_tasks(["FixtureRetreival"], suite_dir=fixture_suite)
    message = str(info.value)
    assert "unknown task 'FixtureRetreival'" in message
    assert "'FixtureRetrieval'" in message.split("Did you mean")[1].split("?")[0]
    assert "poolattn evaluate --list-tasks" in message


def test_case_mismatch_suggests_the_exact_name(fixture_suite):
    with pytest.raises(UnknownTaskError, match=r"Did you mean 'FixtureSTS'"):
        get_tasks(["fixturests"], suite_dir=fixture_suite)


def test_category_without_offline_tasks_is_explained(fixture_suite, tmp_path):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")

    def drop_sts(entries):
        entries[:] = [e for e in entries if e["category"] != "sts"]

    _edit_manifest(suite, drop_sts)
    with pytest.raises(UnknownTaskError, match="the offline suite has no sts task"):
        get_tasks(["sts"], suite_dir=suite)


def test_suite_without_manifest_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        get_tasks(["suite"], suite_dir=tmp_path)


def test_rebuilt_data_gets_a_new_revision_on_the_next_lookup(fixture_suite, tmp_path):
    suite = _copy_suite(fixture_suite, tmp_path / "suite")
    (before,) = get_tasks(["FixtureSTS"], suite_dir=suite)
    _write_payload(suite, "FixtureSTS.json.gz", {"test": {"sentence1": ["a", "c"], "sentence2": ["b", "d"],
                                                          "score": [1, 2]}})
    (after,) = get_tasks(["FixtureSTS"], suite_dir=suite)
    assert after.metadata.revision != before.metadata.revision
    after.load_data()
    assert len(after.dataset["default"]["test"]) == 2
