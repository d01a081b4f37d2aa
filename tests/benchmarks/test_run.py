"""Smoke tests of benchmarks/run.py on tiny random models: the figures' code paths run and print well-formed lines.

No timing is asserted (benchmarks print numbers; this machine is too noisy for thresholds). What is checked: every
`name=value` line has three decimals and a finite, positive value; both libraries saw identical tokens; and
sentence-transformers' embedding of each text matches poolattn's (same weights, same tokens, last-token pooling).
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<name>[a-z0-9_]+)=(?P<value>-?\d+\.\d{3}|nan|inf)$")


@pytest.fixture(scope="module")
def bench():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.run")


def figures(stdout: str) -> dict[str, float]:
    """The `name=value` lines; everything else must be a `# ` header or note line."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("# "):
            continue
        match = LINE.match(line)
        assert match, f"malformed output line: {line!r}"
        out[match["name"]] = float(match["value"])
    return out


def test_cpu_figures_print_finite_positive_values(bench, tiny_llama, capfd, tmp_path):
    """Several figures: each runs in a fresh process, whose lines reach stdout and whose figures join the JSON."""
    report = tmp_path / "bench.json"
    code = bench.main(["--backbone", str(tiny_llama), "--tiny-settings", "--threads", "1", "--json", str(report),
                       "--only", "train_speed_vs_st,encode_speed_vs_st,overhead_vs_bare"])
    assert code == 0
    out, err = capfd.readouterr()
    assert "figure encode_speed_vs_st (in a fresh process)" in err
    assert "# cpu: " in out and "# torch_threads: 1" in out and "# sentence_transformers: " in out
    values = figures(out)
    for name in ("train_speed_vs_st", "poolattn_train_samples_per_s", "st_train_samples_per_s",
                 "encode_speed_vs_st", "poolattn_encode_texts_per_s", "st_encode_texts_per_s",
                 "overhead_vs_bare", "poolattn_step_s", "bare_step_s"):
        assert name in values, f"{name} missing from {sorted(values)}"
    for name, value in values.items():
        assert math.isfinite(value) and value > 0, f"{name}={value}"
    # fairness: identical token ids on both sides, and the same embeddings (bf16 rounding apart)
    assert values["train_token_match"] == 1.0
    assert values["encode_token_match"] == 1.0
    assert values["encode_cosine_poolattn_vs_st_min"] > 0.99
    saved = json.loads(report.read_text())
    assert saved["figures"] == pytest.approx(values, abs=5e-4)  # printed with three decimals
    assert saved["samples"]["encode_seconds_st"] and "encode_tokens" in saved["notes"]


def test_cpu_utilisation_prints_both_dtypes_and_the_chosen_one(bench, tiny_llama, capsys):
    code = bench.main(["--backbone", str(tiny_llama), "--tiny-settings", "--threads", "1", "--only", "cpu_utilisation"])
    assert code == 0
    values = figures(capsys.readouterr().out)
    for purpose in ("encode", "train"):
        for dtype in ("float32", "bfloat16"):
            for name in (f"{purpose}_matmul_gflops_{dtype}", f"{purpose}_tokens_per_s_{dtype}"):
                assert math.isfinite(values[name]) and values[name] > 0, f"{name}={values.get(name)}"
            assert f"{purpose}_cpu_utilisation_{dtype}" in values
        # the tiny model is below the size worth timing: auto is float32, so the headline is float32's figure
        assert values[f"{purpose}_cpu_utilisation"] == values[f"{purpose}_cpu_utilisation_float32"]


def test_cpu_utilisation_measures_only_the_dtype_asked_for(bench, tiny_llama, capsys):
    code = bench.main(["--backbone", str(tiny_llama), "--tiny-settings", "--threads", "1", "--only", "cpu_utilisation",
                       "--dtype", "bfloat16"])
    assert code == 0
    out = capsys.readouterr().out
    values = figures(out)
    assert "encode_cpu_utilisation_bfloat16" in values and "encode_cpu_utilisation_float32" not in values
    # auto picks float32 for the tiny model: the headline is not printed, and a note says why
    assert "encode_cpu_utilisation" not in values and "not measured (--dtype)" in out


def test_gpu_code_path_dry_run_on_cpu(bench, capsys, tmp_path):
    """--gpu's code path (random-init Mistral, in-process memory probe, MFU) on a tiny shape on the CPU."""
    report = tmp_path / "bench.json"
    code = bench.main(["--gpu-dry-run-on-cpu", "--tiny-settings", "--threads", "1", "--json", str(report),
                       "--only", "training_mfu,gradcache_memory_ratio"])
    assert code == 0
    out = capsys.readouterr().out
    assert "# mfu_formula: " in out and "random-init Mistral" in out
    printed = figures(out)
    # a tiny model's MFU prints as 0.000: read the unrounded values from --json
    values = json.loads(report.read_text())["figures"]
    assert printed.keys() == values.keys()
    for name in ("train_tokens_per_s_design1", "train_tokens_per_s_design5", "mfu_design1", "mfu_design5",
                 "gradcache_memory_ratio", "gradcache_step_peak_mb", "plain_step_peak_mb"):
        assert math.isfinite(values[name]) and values[name] > 0, f"{name}={values.get(name)}"
    assert values["hfu_design1"] > values["mfu_design1"]  # GradCache's extra forward counts as hardware work only


def test_fit_records_leaves_room_for_eos(bench, tiny_llama):
    """Every text, instruction included, fits max_length - 1 tokens, so neither side truncates away the EOS."""
    from transformers import AutoTokenizer

    from benchmarks.data import fit_records, sample_records

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    template = "Instruct: {instruction}\nQuery: "
    records = fit_records(sample_records(20), tokenizer, max_length=120, template=template)
    for record in records:
        query = template.format(instruction=record.instruction) + record.query if record.instruction else record.query
        for text in (query, record.positive, *record.negatives):
            assert len(tokenizer(text)["input_ids"]) <= 119
    assert any(len(r.positive) == 119 for r in records)  # something was actually cut (1 char = 1 token here)


@pytest.mark.parametrize("lora", [False, True])
def test_the_contenders_time_every_layer_with_the_prefix_cache_off(bench, tiny_llama, lora):
    """Without LoRA every layer is frozen: a cache would serve a repeated encode of the same texts from memory."""
    import torch

    from benchmarks.contenders import Backbone, build_embedder

    backbone = Backbone("tiny", torch.device("cpu"), folder=str(tiny_llama))
    model = build_embedder(backbone, 1, max_length=32, attn="sdpa", dtype="float32", lora=lora)
    assert model.prefix_cache is None
    first = model.encode(["a text", "another text"], show_progress=False)
    assert model.encode(["a text", "another text"], show_progress=False) == pytest.approx(first, abs=1e-6)
