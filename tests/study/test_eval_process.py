"""The study's evaluation child process: one child for every call, errors raised as they were, a dead child named;
and a study evaluated in it scores exactly as one evaluated in the training process."""

from __future__ import annotations

import json
import os

import pytest
import torch

from poolattn.config import Config, merge
from poolattn.errors import InputError
from poolattn.study.eval_process import EvaluationProcess
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
    with EvaluationProcess() as child:
        first, second = child.call(_state), child.call(_state)
        assert child.call(_remember, 1) == [1] and child.call(_remember, 2) == [1, 2]  # what one call leaves stays
    assert first[0] != os.getpid() and first == second == (first[0], threads)
    assert "_SEEN" not in globals()  # nothing of it ran here


def test_an_error_in_the_child_is_raised_here_as_it_was_raised_there():
    with EvaluationProcess() as child, pytest.raises(InputError, match="NoSuchTask"):
        child.call(_bad_input)


def test_a_dead_child_is_reported_with_the_run_it_was_evaluating_and_the_next_call_starts_a_new_one():
    with EvaluationProcess() as child:
        before = child.call(_state)[0]
        with pytest.raises(RuntimeError, match=r"evaluating design 2, seed 7 died .*resume"):
            child.call(os._exit, 3, what="design 2, seed 7")
        assert child.call(_state)[0] not in (before, os.getpid())


def _config(tiny_llama, tmp_path) -> Config:
    rows = [{"query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}", "positive": f"answer {i} text"}
            for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return merge(Config(), {
        "model": {"backbone": str(tiny_llama), "max_length": 64, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "data": {"dataset_file_path": str(tmp_path / "train.jsonl"), "holdout": 0},
        "train": {"per_device_train_batch_size": 4, "max_steps": 2, "learning_rate": 1e-2, "save_steps": 100,
                  "disable_tqdm": True},
        "eval": {"tasks": ["PoolattnFoldocTermRetrieval"], "batch_size": 64, "dtype": "float32"},
        "study": {"designs": [2], "output_dir": str(tmp_path / "study")},
    })


@pytest.mark.slow  # two tiny studies, one with a spawned child (about 20 CPU seconds)
def test_a_study_evaluated_in_the_child_scores_as_one_evaluated_here(tiny_llama, tmp_path):
    scores = {}
    for where in (False, True):
        folder = tmp_path / str(where)
        folder.mkdir()
        results = json.loads(run_study(make_plan(_config(tiny_llama, folder)), progress=False,
                                       eval_process=where).read_text())
        scores[where] = {key: run["scores"] for key, run in results["runs"].items()}
    assert set(scores[True]) == {"baseline", "2"}
    assert all(0 < score < 1 for by_task in scores[True].values() for score in by_task.values())
    for key, by_task in scores[False].items():
        assert scores[True][key] == pytest.approx(by_task, abs=1e-6), key
