"""--overwrite_output_dir and `study --force` delete only a run folder poolattn made, and only after the data checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolattn.cli import main
from poolattn.training.run import RUN_MARKER, remove_run


def _good_data(tmp_path: Path) -> Path:
    rows = [{"query": f"question {i}", "positive": f"answer {i}", "negative": f"other {i}"} for i in range(8)]
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train(tiny_llama, data: Path, out: Path | str, *extra: str) -> int:
    return main(["train", "--design", "1", "--model_name_or_path", str(tiny_llama), "--dataset_file_path", str(data),
                 "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "2",
                 "--max_seq_length", "16", "--lora_r", "2", "--disable_tqdm", *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_that_is_not_a_run_is_left_untouched(tiny_llama, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("four years of work")
    assert _train(tiny_llama, _good_data(tmp_path), precious, "--overwrite_output_dir") == 2
    assert _snapshot(precious) == {"thesis.txt": b"four years of work"}
    err = capsys.readouterr().err
    assert f"has no {RUN_MARKER}" in err and "Traceback" not in err


def test_a_broken_dataset_deletes_nothing_even_in_a_run_folder(tiny_llama, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text("{}")
    (run / "poolattn.json").write_text("{}")
    before = _snapshot(run)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "q"}\n')
    assert _train(tiny_llama, broken, run, "--overwrite_output_dir") == 2
    assert _snapshot(run) == before
    assert "broken.jsonl:1: field 'positive' is missing" in capsys.readouterr().err


@pytest.mark.parametrize("where", [".", "~"])
def test_the_current_and_home_folders_are_never_deleted(tiny_llama, tmp_path, monkeypatch, where, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / RUN_MARKER).write_text("{}")  # even a folder that looks like a run
    (home / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    data = _good_data(tmp_path)
    assert _train(tiny_llama, data, Path(where).expanduser(), "--overwrite_output_dir") == 2
    assert (home / "notes.txt").read_text() == "mine"
    assert "will not delete" in capsys.readouterr().err


def test_remove_run_refuses_the_root_folder():
    with pytest.raises(FileExistsError, match="filesystem root"):
        remove_run(Path("/"), flag="--force")


def test_a_previous_run_is_replaced(tiny_llama, tmp_path):
    # Positive control: a folder poolattn made is replaced, so the refusals above are not a deletion that never runs.
    data = _good_data(tmp_path)
    assert _train(tiny_llama, data, tmp_path / "run") == 0
    assert (tmp_path / "run" / RUN_MARKER).is_file()
    (tmp_path / "run" / "left-over.txt").write_text("from the first run")
    assert _train(tiny_llama, data, tmp_path / "run", "--overwrite_output_dir") == 0
    assert not (tmp_path / "run" / "left-over.txt").exists()
    assert (tmp_path / "run" / "poolattn.json").is_file() and (tmp_path / "run" / RUN_MARKER).is_file()


def test_study_force_removes_only_a_run_folder(tmp_path):
    foreign = tmp_path / "model"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"--force: will not delete .*has no {RUN_MARKER}"):
        remove_run(foreign, flag="--force")
    assert (foreign / "notes.txt").read_text() == "mine"
    (foreign / RUN_MARKER).write_text("{}")  # control: the same folder, marked as a poolattn run, is removed
    remove_run(foreign, flag="--force")
    assert not foreign.exists()


def test_a_symlink_to_a_run_is_not_followed(tmp_path):
    run = tmp_path / "real"
    run.mkdir()
    (run / RUN_MARKER).write_text("{}")
    (tmp_path / "link").symlink_to(run)
    with pytest.raises(FileExistsError, match="symbolic link"):
        remove_run(tmp_path / "link")
    assert (run / RUN_MARKER).is_file()
