"""The study's child processes: one child for every call until closed, errors raised as they were, a dead child
named; and a study trained and evaluated in children trains and scores exactly as one run in a single process."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from poolattn.config import Config, merge
from poolattn.errors import InputError
from poolattn.study.processes import ChildProcess
from poolattn.study.plan import make_plan
from poolattn.study.run import run_study


def _state() -> tuple[int, int]:
    return os.getpid(), torch.get_num_threads()


def _remember(value: int) -> list[int]:
    """Appends to a list that lives in the process that runs it."""
    seen = globals().setdefault("_SEEN", [])
    seen.append(value)
    return list(seen)


def _bad_input() -> None:
    raise InputError("eval.tasks names 'NoSuchTask'; `poolattn evaluate --list-tasks` lists them")


def test_every_call_runs_in_one_child_that_keeps_its_state_and_the_parents_threads():
    threads = torch.get_num_threads()
    with ChildProcess("evaluating") as child:
        first, second = child.call(_state), child.call(_state)
        assert child.call(_remember, 1) == [1] and child.call(_remember, 2) == [1, 2]  # what one call leaves stays
        child.close()  # as the study does when the attention mode changes: the next call gets a new child
        third = child.call(_state)
        assert child.call(_remember, 3) == [3]
    assert first[0] != os.getpid() and first == second == (first[0], threads)
    assert third[0] not in (first[0], os.getpid()) and third[1] == threads
    assert "_SEEN" not in globals()  # nothing of it ran here


def test_an_error_in_the_child_is_raised_here_as_it_was_raised_there():
    with ChildProcess("evaluating") as child, pytest.raises(InputError, match="NoSuchTask"):
        child.call(_bad_input)


def test_a_dead_child_is_reported_with_the_run_it_was_evaluating_and_the_next_call_starts_a_new_one():
    with ChildProcess("training") as child:
        before = child.call(_state)[0]
        with pytest.raises(RuntimeError, match=r"training design 2, seed 7 died .*resume"):
            child.call(os._exit, 3, what="design 2, seed 7")
        assert child.call(_state)[0] not in (before, os.getpid())


def test_a_dead_child_error_says_what_its_user_should_do_next():
    with ChildProcess("measuring", then="run the benchmark again") as child, \
            pytest.raises(RuntimeError, match=r"measuring encode_speed_vs_st died .*; run the benchmark again, and"):
        child.call(os._exit, 3, what="encode_speed_vs_st")


def _config(tiny_llama, tmp_path) -> Config:
    rows = [{"query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}", "positive": f"answer {i} text"}
            for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return merge(Config(), {
        "model": {"backbone": str(tiny_llama), "max_length": 64, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "data": {"dataset_file_path": str(tmp_path / "train.jsonl"), "holdout": 0},
        "train": {"per_device_train_batch_size": 4, "max_steps": 2, "learning_rate": 1e-2, "save_steps": 100,
                  "logging_steps": 1, "disable_tqdm": True},
        "eval": {"tasks": ["PoolattnFoldocTermRetrieval"], "batch_size": 64, "dtype": "float32"},
        "study": {"designs": [2, 4], "output_dir": str(tmp_path / "study")},
    })


@pytest.mark.slow  # two tiny studies, one with spawned children (about 30 CPU seconds)
def test_a_study_run_in_children_trains_and_scores_as_one_run_here(tiny_llama, tmp_path, caplog):
    scores, losses = {}, {}
    for where in (False, True):
        folder = tmp_path / str(where)
        folder.mkdir()
        with caplog.at_level(logging.INFO, logger="poolattn.study.processes"):
            results = json.loads(run_study(make_plan(_config(tiny_llama, folder)), progress=False,
                                           child_processes=where).read_text())
        scores[where] = {key: run["scores"] for key, run in results["runs"].items()}
        losses[where] = {key: run["train"]["loss_history"] for key, run in results["runs"].items() if run["train"]}
    assert set(scores[True]) == {"baseline", "2", "4"}
    assert all(0 < score < 1 for by_task in scores[True].values() for score in by_task.values())
    for key, by_task in scores[False].items():
        assert scores[True][key] == pytest.approx(by_task, abs=1e-6), key
    assert losses[True] == losses[False] and all(len(history) == 2 for history in losses[True].values())
    # what a pass held is recorded with each run's scores: the tiny model is below the size worth timing
    assert {run["encode_pass_tokens"] for run in results["runs"].values()} == {512}
    # one evaluating child; a training child for the causal design 2, and a new one for the bidirectional design 4
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a new child process")]
    assert started.count("a new child process for evaluating (study/processes.py says why)") == 1
    assert started.count("a new child process for training (study/processes.py says why)") == 2
