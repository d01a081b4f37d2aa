"""CLI in process: exit codes, files written, messages for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolattn.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("encode", "models"):
        assert command in out


def test_the_installed_version_is_the_one_in_version_py():
    from importlib.metadata import version

    from poolattn import __version__

    assert version("poolattn") == __version__  # pyproject.toml reads it from poolattn/version.py


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    assert "smollm2-135m" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_encode_writes_npy(tiny_llama, tmp_path, suffix, capsys):
    source = tmp_path / f"in{suffix}"
    texts = ["hello world", "", "the cat"]
    if suffix == ".txt":
        source.write_text("\n".join(texts) + "\n")
    else:
        source.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    out = tmp_path / "emb.npy"
    code = main(["encode", "--model", "2", "--backbone", str(tiny_llama), "--input", str(source),
                 "--output", str(out), "--no-progress"])
    assert code == 0
    embeddings = np.load(out)
    assert embeddings.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert "wrote 3 x 32" in capsys.readouterr().out


def test_encode_bad_jsonl_line_names_file_and_line(tiny_llama, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    code = main(["encode", "--model", "1", "--backbone", str(tiny_llama), "--input", str(source),
                 "--output", str(tmp_path / "e.npy")])
    assert code == 2
    assert "in.jsonl:2" in capsys.readouterr().err


def test_encode_unknown_model_is_a_one_line_error(tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("a\n")
    assert main(["encode", "--model", "nine", "--input", str(source), "--output", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert "neither a saved model folder nor a design" in err and "Traceback" not in err


def _command_raising(monkeypatch, error: BaseException) -> None:
    import poolattn.cli.models as models

    def run(args):
        raise error

    monkeypatch.setattr(models, "run", run)


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), TypeError("a bug"), ValueError("a bug"),
                                   OSError("disk broke")])
def test_an_unexpected_error_keeps_its_traceback(monkeypatch, error):
    # Only errors raised on purpose about user input (UsageError) become one line; a bug or an out-of-memory
    # error must reach the user with its traceback.
    _command_raising(monkeypatch, error)
    with pytest.raises(type(error)):
        main(["models", "list"])


def test_a_usage_error_is_one_line_with_exit_code_2(monkeypatch, capsys):
    from poolattn.config import ConfigError

    _command_raising(monkeypatch, ConfigError("train.learning_rate=inf must be a finite number"))
    assert main(["models", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "poolattn models: error: train.learning_rate=inf must be a finite number\n"


def test_encode_reports_the_real_output_path_and_empty_texts(tiny_llama, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_bytes(b"\xef\xbb\xbfhello\n   \nthe cat\n")  # a byte-order mark is not part of the first text
    code = main(["encode", "--model", "2", "--backbone", str(tiny_llama), "--input", str(source),
                 "--output", str(tmp_path / "emb"), "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    assert f"wrote 3 x 32 embeddings to {tmp_path / 'emb.npy'}\n" in captured.out  # the file np.save really wrote
    assert np.load(tmp_path / "emb.npy").shape == (3, 32)
    assert "1 of 3 texts are empty or whitespace only (texts 2)" in captured.err


def test_encode_checks_its_output_before_loading_the_model(tmp_path, capsys, monkeypatch):
    import poolattn.model

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(poolattn.model, "resolve_model", never)
    source = tmp_path / "in.txt"
    source.write_text("a\n")
    (tmp_path / "file.txt").write_text("x")
    for output, message in ((f"{tmp_path}/out/", "is a folder"), (f"{tmp_path}/file.txt/e.npy", "cannot write")):
        assert main(["encode", "--model", "1", "--input", str(source), "--output", output]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "in.txt"]


def test_a_command_run_under_a_launcher_closes_its_process_group(tmp_path, capsys):
    """torchrun / accelerate open a process group; the command closes it before Python shuts down (gloo's threads
    left to interpreter teardown can abort a finished run)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert main(["models", "list"]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
