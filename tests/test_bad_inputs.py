"""The bad-input corpus: broken training files, encode inputs, flags and saved-model folders, through the real CLI.

Every case must exit with code 2 and one line naming the file / line / key and what to do, print no traceback,
and leave the working folder exactly as it was (nothing created, nothing deleted). The fixtures are generated
here, each in its own empty folder, from the table below.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from poolattn.cli import main

GOOD = '{"query": "q", "positive": "p"}\n'
LATIN1 = '{"query": "caf\xe9", "positive": "p"}\n'.encode("latin-1")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


@dataclass
class Case:
    """argv with {w} (the case's folder), {tiny} (a tiny backbone) and {model} (a copy of a saved model)."""

    name: str
    argv: str
    expect: str  # a substring of the one error line: it names the file / line / key and says what to do
    files: dict[str, bytes | str] = field(default_factory=dict)
    model_edit: Callable[[Path], None] | None = None


def _train(data: str, *flags: str) -> str:
    return ("train --design 1 --model_name_or_path {tiny} --max_steps 1 --output_dir {w}/out "
            f"--dataset_file_path {{w}}/{data} " + " ".join(flags))


def _encode(model: str = "1", inp: str = "in.txt", out: str = "{w}/e.npy", *flags: str) -> str:
    return f"encode --model {model} --backbone {{tiny}} --input {{w}}/{inp} --output {out} " + " ".join(flags)


def _meta(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        meta = json.loads((folder / "poolattn.json").read_text())
        edit(meta)
        (folder / "poolattn.json").write_text(json.dumps(meta))
    return apply


def _json_file(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        edit(data)
        (folder / name).write_text(json.dumps(data))
    return apply


def _code_running(ask: bool) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / "evil.py").write_text("open('MARKER', 'w').write('ran')\n")
        _json_file("tokenizer_config.json", lambda c: c.update(
            tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]}))(folder)
        if ask:
            _meta(lambda m: m["model"].update(trust_remote_code=True))(folder)
    return apply


def _adapter_bin_only(folder: Path) -> None:
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_model.bin").write_bytes(b"pickle, not safetensors")


CASES = [
    # ---- training files
    Case("json-syntax", _train("d.jsonl"), "d.jsonl:2: not valid JSON", {"d.jsonl": GOOD + '{"query": "q",\n'}),
    Case("missing-field", _train("d.jsonl"), "d.jsonl:1: field 'positive' is missing",
         {"d.jsonl": '{"query": "q"}\n'}),
    Case("empty-field", _train("d.jsonl"), "d.jsonl:1: field 'query' is empty",
         {"d.jsonl": '{"query": " ", "positive": "p"}\n'}),
    Case("negatives-type", _train("d.jsonl"), "d.jsonl:1: field 'negatives' must be a string or a list",
         {"d.jsonl": '{"query": "q", "positive": "p", "negatives": 3}\n'}),
    Case("not-an-object", _train("d.jsonl"), "d.jsonl:1: a record must be a JSON object", {"d.jsonl": "[1, 2]\n"}),
    Case("latin1", _train("d.jsonl"), "d.jsonl:2: not valid UTF-8 (byte 0xe9 at byte offset",
         {"d.jsonl": GOOD.encode() + LATIN1}),
    Case("latin1-json", _train("d.json"), "d.json:1: not valid UTF-8", {"d.json": b"[" + LATIN1.strip() + b"]"}),
    Case("corrupt-gzip", _train("d.jsonl.gz"), "d.jsonl.gz' is not a readable gzip file",
         {"d.jsonl.gz": gzip.compress(GOOD.encode() * 40)[:30] + b"\x00" * 40}),
    Case("unknown-field-strict", _train("d.jsonl", "--strict"), "d.jsonl:1: unknown field 'negatvie'",
         {"d.jsonl": '{"query": "q", "positive": "p", "negatvie": "n"}\n'}),
    Case("unknown-task", _train("d.jsonl"), "d.jsonl:1:",
         {"d.jsonl": '{"query": "q", "positive": "p", "task": "no-such-task"}\n'}),
    Case("blank-file", _train("d.jsonl"), "has no usable records", {"d.jsonl": "\n  \n"}),
    Case("all-skipped", _train("d.jsonl", "--on_bad_record skip"), "no usable records (2 bad records skipped)",
         {"d.jsonl": '{"query": "q"}\nnot json\n'}),
    Case("json-not-a-list", _train("d.json"), "must hold a list of records", {"d.json": '{"a": 1}'}),
    Case("csv", _train("d.csv"), "use .json, .jsonl or .jsonl.gz", {"d.csv": "query,positive\n"}),
    Case("missing-data", _train("nothing.jsonl"), "nothing.jsonl' does not exist"),
    Case("no-such-backbone", _train("d.jsonl").replace("{tiny}", "{w}/no/such/backbone"),
         "could not load backbone", {"d.jsonl": GOOD}),
    # ---- flags and config files
    Case("loss-scale-inf", _train("d.jsonl", "--loss_scale inf"), "loss.scale=inf must be a finite number",
         {"d.jsonl": GOOD}),
    Case("lr-inf", _train("d.jsonl", "--learning_rate inf"), "train.learning_rate=inf must be a finite",
         {"d.jsonl": GOOD}),
    Case("grad-norm-nan", _train("d.jsonl", "--max_grad_norm nan"), "train.max_grad_norm=nan must be a finite",
         {"d.jsonl": GOOD}),
    Case("epochs-nan", _train("d.jsonl", "--max_steps -1 --num_train_epochs nan"),
         "train.num_train_epochs=nan must be a finite", {"d.jsonl": GOOD}),
    Case("bf16-maybe", _train("d.jsonl", "--bf16 maybe"), "--bf16 'maybe': expected true or false",
         {"d.jsonl": GOOD}),
    Case("attention", _train("d.jsonl", "--attention sideways"), "model.attention='sideways' is not allowed",
         {"d.jsonl": GOOD}),
    Case("max-length-huge", _train("d.jsonl", "--max_seq_length 1000000000000000000"),
         "model.max_length=1000000000000000000 is over the limit", {"d.jsonl": GOOD}),
    Case("latents-zero", _train("d.jsonl", "--num_latents 0"), "pooling.num_latents=0 must be",
         {"d.jsonl": GOOD}),
    Case("batch-zero", _train("d.jsonl", "--per_device_train_batch_size 0"),
         "train.per_device_train_batch_size=0 must be", {"d.jsonl": GOOD}),
    Case("dropout", _train("d.jsonl", "--lora_dropout 1.5"), "lora.dropout=1.5 must be in [0, 1)",
         {"d.jsonl": GOOD}),
    Case("scheduler", _train("d.jsonl", "--lr_scheduler_type sideways"), "refused by transformers.TrainingArguments",
         {"d.jsonl": GOOD}),
    Case("design", _train("d.jsonl").replace("--design 1", "--design 9"), "design 9 does not exist",
         {"d.jsonl": GOOD}),
    Case("config-missing", _train("d.jsonl", "--config {w}/nope.yaml"), "nope.yaml' does not exist",
         {"d.jsonl": GOOD}),
    Case("config-unknown-key", _train("d.jsonl", "--config {w}/c.yaml"), "c.yaml': unknown key 'config.model.pooling.nam'",
         {"d.jsonl": GOOD, "c.yaml": "model:\n  pooling:\n    nam: mean\n"}),
    Case("overwrite-foreign", _train("d.jsonl", "--overwrite_output_dir"), "it has no poolattn_run.json",
         {"d.jsonl": GOOD, "out/thesis.txt": "four years"}),
    Case("foreign-output-dir", _train("d.jsonl"), "is not empty and holds no poolattn run",
         {"d.jsonl": GOOD, "out/thesis.txt": "four years"}),
    # ---- encode inputs and outputs
    Case("encode-latin1", _encode(inp="in.txt"), "in.txt:2: not valid UTF-8 (byte 0xe9 at byte offset 9 of the file)",
         {"in.txt": b"hello\ncaf\xe9 au lait\n"}),
    Case("encode-empty", _encode(inp="in.txt"), "in.txt' holds no texts", {"in.txt": ""}),
    Case("encode-jsonl-field", _encode(inp="in.jsonl"), 'in.jsonl:2: expected {"text": "..."}',
         {"in.jsonl": '{"text": "a"}\n{"txt": "b"}\n'}),
    Case("encode-suffix", _encode(inp="in.csv"), "use a .txt file", {"in.csv": "a\n"}),
    Case("encode-missing-input", _encode(inp="nope.txt"), "nope.txt' does not exist"),
    Case("encode-output-folder", _encode(out="{w}/out/"), "is a folder; give a file name", {"in.txt": "a\n"}),
    Case("encode-output-under-file", _encode(out="{w}/in.txt/e.npy"), "cannot write", {"in.txt": "a\n"}),
    Case("encode-no-such-model-dir", _encode(model="{w}/no/such/dir"), "no such model folder", {"in.txt": "a\n"}),
    Case("encode-unknown-design", _encode(model="nine"), "neither a saved model folder nor a design",
         {"in.txt": "a\n"}),
    # ---- saved-model folders
    Case("model-code-running", _encode(model="{model}"), "--trust_remote_code", {"in.txt": "a\n"},
         _code_running(ask=True)),
    Case("model-auto-map", _encode(model="{model}"), "tokenizer_config.json: key 'auto_map'", {"in.txt": "a\n"},
         _code_running(ask=False)),
    Case("model-no-pooler", _encode(model="{model}"), "poolattn.json: missing key 'pooler'", {"in.txt": "a\n"},
         _meta(lambda m: m.pop("pooler"))),
    Case("model-huge-latents", _encode(model="{model}"), "pooling.num_latents=1000000000000 is over the limit",
         {"in.txt": "a\n"}, _meta(lambda m: m["model"]["pooling"].update(num_latents=10**12))),
    Case("model-backbone-outside", _encode(model="{model}").replace("--backbone {tiny} ", ""),
         "model.backbone='../../..' is a local path", {"in.txt": "a\n"},
         lambda f: (shutil.rmtree(f / "backbone"), _meta(lambda m: m["model"].update(backbone="../../.."))(f))),
    Case("model-bad-json", _encode(model="{model}"), "poolattn.json: not valid UTF-8 JSON", {"in.txt": "a\n"},
         lambda f: (f / "poolattn.json").write_text("{not json")),
    Case("model-no-meta", _encode(model="{model}"), "is not a saved poolattn model (no poolattn.json)",
         {"in.txt": "a\n"}, lambda f: (f / "poolattn.json").unlink()),
    Case("model-pickle-adapter", _encode(model="{model}"), "holds no adapter_model.safetensors", {"in.txt": "a\n"},
         _adapter_bin_only),
    Case("model-unknown-key", _encode(model="{model}"), "poolattn.json: unknown key 'model.trust_remote'",
         {"in.txt": "a\n"}, _meta(lambda m: m["model"].update(trust_remote=True))),
    # ---- evaluate
    Case("evaluate-code-running", "evaluate --model {model} --output {w}/ev", "--trust_remote_code", {},
         _code_running(ask=True)),
    Case("evaluate-unknown-task", "evaluate --model 1 --tasks no-such-task --output {w}/ev", "no-such-task"),
    Case("evaluate-batch", "evaluate --model 1 --batch-size 0 --output {w}/ev", "--batch-size must be positive"),
]


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)
    kinds = {c.argv.split()[0] for c in CASES} | {"model" for c in CASES if c.model_edit}
    assert kinds == {"train", "encode", "evaluate", "model"}


@pytest.fixture(scope="module")
def saved_model(tiny_llama, tmp_path_factory) -> Path:
    from poolattn.model import Embedder

    folder = tmp_path_factory.mktemp("corpus") / "saved"
    Embedder.from_design(1, str(tiny_llama), device="cpu").save(folder, merge_lora=True)
    return folder


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_is_one_line_exit_2_and_touches_nothing(case, tiny_llama, saved_model, tmp_path, capsys,
                                                            monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    monkeypatch.chdir(work)  # a file a case might create by accident lands where the snapshot sees it
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    model = work / "model"
    if case.model_edit:
        shutil.copytree(saved_model, model)
        case.model_edit(model)
    before = _snapshot(work)
    argv = case.argv.format(w=work, tiny=tiny_llama, model=model).split()
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"poolattn {argv[0]}: error: "), err
    assert case.expect in lines[0], lines[0]
    assert _snapshot(work) == before  # nothing created, nothing deleted, nothing changed
