"""Loading a saved model folder runs no code from it, reads no backbone outside it, and checks its poolattn.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolattn.cli import main
from poolattn.config import ConfigError
from poolattn.errors import UnsafeModelError
from poolattn.model import Embedder
from poolattn.model.folder import read_saved_model

EVIL = '''
from pathlib import Path
Path({marker!r}).write_text("code from the model folder ran")
from transformers import PreTrainedTokenizerFast
class EvilTokenizer(PreTrainedTokenizerFast):
    pass
'''


@pytest.fixture(scope="module")
def saved(tiny_llama, tmp_path_factory) -> Path:
    """A merged design-1 model (its backbone inside the folder), saved once."""
    folder = tmp_path_factory.mktemp("saved") / "m"
    Embedder.from_design(1, str(tiny_llama), device="cpu").save(folder, merge_lora=True)
    return folder


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "model"))


def _edit_meta(folder: Path, edit) -> None:
    meta = json.loads((folder / "poolattn.json").read_text())
    edit(meta)
    (folder / "poolattn.json").write_text(json.dumps(meta))


def code_running_folder(saved: Path, tmp_path: Path, *, ask: bool = True) -> tuple[Path, Path]:
    """The folder from the issue: poolattn.json asks for trust_remote_code and the tokenizer maps to its own file."""
    folder, marker = _copy(saved, tmp_path), tmp_path / "MARKER"
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if ask:
        _edit_meta(folder, lambda m: m["model"].update(trust_remote_code=True))
    return folder, marker


@pytest.mark.parametrize("ask", [True, False], ids=["poolattn.json asks", "auto_map only"])
def test_the_code_running_folder_runs_no_code(saved, tmp_path, capsys, ask):
    folder, marker = code_running_folder(saved, tmp_path, ask=ask)
    with pytest.raises(UnsafeModelError, match="trust_remote_code=True"):
        Embedder.load(folder, device="cpu")
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    assert main(["encode", "--model", str(folder), "--input", str(source), "--output", str(tmp_path / "e.npy")]) == 2
    assert main(["evaluate", "--model", str(folder), "--tasks", "suite", "--output", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert err.count("--trust_remote_code") == 2 and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "e.npy").exists() and not (tmp_path / "ev").exists()


def test_the_marker_would_be_written_if_the_caller_trusted_the_folder(saved, tmp_path, monkeypatch):
    # Negative control: the fixture does run its code once the caller opts in, so the test above can fail.
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))  # keep ~/.cache clean
    folder, marker = code_running_folder(saved, tmp_path)
    try:
        Embedder.load(folder, device="cpu", trust_remote_code=True)
    except Exception:  # the fake tokenizer class need not load; its module's code has run by then
        pass
    assert marker.read_text() == "code from the model folder ran"


def test_a_local_backbone_path_is_loaded_only_when_the_caller_names_it(tiny_llama, tmp_path):
    Embedder.from_design(2, str(tiny_llama), device="cpu").save(tmp_path / "m")  # adapters, backbone by path
    with pytest.raises(UnsafeModelError, match=r"--backbone .*llama"):
        Embedder.load(tmp_path / "m", device="cpu")
    _edit_meta(tmp_path / "m", lambda m: m["model"].update(backbone="../../../etc"))
    with pytest.raises(UnsafeModelError, match=r"'../../../etc' is a local path"):
        Embedder.load(tmp_path / "m", device="cpu")
    loaded = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama))
    assert loaded.encode(["x"]).shape == (1, 32)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("pooler"), "missing key 'pooler'"),
    (lambda m: m.update(extra=1), "unknown key 'extra'"),
    (lambda m: m["model"]["pooling"].update(num_latents=10**12), "pooling.num_latents=1000000000000 is over"),
    (lambda m: m["model"].update(max_length=10**18), "model.max_length=1000000000000000000 is over"),
    (lambda m: m["model"].update(max_length="512"), "model.max_length='512' must be of type int"),
    (lambda m: m["model"].update(exclude_instruction="yes"), "model.exclude_instruction='yes' must be of type bool"),
    (lambda m: m["pooler"]["args"].update(hidden_size=10**9), "pooler.args.hidden_size=1000000000 must be"),
    (lambda m: m["pooler"]["args"].update(module="os.system"), "unknown key 'pooler.args.module'"),
    (lambda m: m["pooler"].update(name="os.system"), "unknown pooling 'os.system'"),
])
def test_poolattn_json_is_checked_against_its_schema(saved, tmp_path, edit, message):
    folder = _copy(saved, tmp_path)
    read_saved_model(folder)  # the untouched copy is valid
    _edit_meta(folder, edit)
    with pytest.raises(ConfigError, match=message) as error:
        read_saved_model(folder)
    assert str(folder / "poolattn.json") in str(error.value)


def test_a_backbone_folder_leading_outside_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    outside = tmp_path / "elsewhere"
    (folder / "backbone").rename(outside)
    (folder / "backbone").symlink_to(outside)
    with pytest.raises(UnsafeModelError, match="leads outside the model folder"):
        Embedder.load(folder, device="cpu")
