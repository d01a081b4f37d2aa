"""CPU encoding pass size: measured per machine, the smallest near-best size wins, cached, default where untimed."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoConfig, LlamaConfig

from poolattn.backbone import passes
from poolattn.errors import InputError
from tests.conftest import ALL_FAMILIES
from poolattn.backbone.passes import (CANDIDATES, DEFAULT_PASS_TOKENS, PROBE_LAYERS, PassChoice, ProbeTimer,
                                      choose_pass_tokens, pick)

SMOLLM2 = LlamaConfig(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
                      num_hidden_layers=30, vocab_size=49152)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(passes, "_MEMO", {})


class FakeTimer:
    """Seconds for one round's work at each pass size, and the sizes asked for."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates = rates
        self.calls: list[int] = []

    def __call__(self, tokens: int) -> float:
        self.calls.append(tokens)
        return max(CANDIDATES) / self.rates[tokens]


def refuse(tokens):
    raise AssertionError("timed although it should not have")


def test_the_smallest_size_near_the_best_wins():
    assert pick({512: 100.0, 1024: 130.0, 2048: 133.0, 4096: 120.0}) == 1024  # 130 is within 5% of 133
    assert pick({512: 100.0, 1024: 90.0, 2048: 80.0, 4096: 70.0}) == 512
    assert pick({512: 50.0, 1024: 60.0, 2048: 100.0}) == 2048


def test_the_measurement_reports_tokens_per_second_of_each_size():
    rates = {512: 30_000.0, 1024: 40_000.0, 2048: 45_000.0}
    timer = FakeTimer(rates)
    choice = choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=timer)
    assert (choice.tokens, choice.reason) == (2048, "measured")
    assert choice.tokens_per_s == pytest.approx(rates)
    assert set(timer.calls) == set(CANDIDATES)  # every size timed, interleaved
    assert timer.calls[:len(CANDIDATES)] == list(CANDIDATES)


def test_a_cache_hit_skips_the_timing_and_the_key_holds_dtype_kernel_and_mode(tmp_path):
    first = choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=FakeTimer({512: 1.0, 1024: 2.0, 2048: 3.0}))
    passes._MEMO.clear()  # a new process: only the file remains
    again = choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=refuse)
    assert (again.tokens, again.reason, again.tokens_per_s) == (first.tokens, "cached", first.tokens_per_s)
    assert len(list((tmp_path / "cache" / "dtype").glob("passes-*.json"))) == 1
    others = [(torch.float32, "sdpa", "causal"), (torch.bfloat16, "eager", "causal"),
              (torch.bfloat16, "sdpa", "bidirectional")]
    for dtype, attn, mode in others:
        timer = FakeTimer({512: 3.0, 1024: 2.0, 2048: 1.0})
        choice = choose_pass_tokens(SMOLLM2, dtype, attn, mode, timer=timer)
        assert (choice.tokens, choice.reason) == (512, "measured") and timer.calls
    shapes = LlamaConfig(**{**SMOLLM2.to_dict(), "intermediate_size": 2048})
    assert choose_pass_tokens(shapes, torch.bfloat16, "sdpa",
                              timer=FakeTimer(dict.fromkeys(CANDIDATES, 1.0))).reason == "measured"


def test_a_damaged_cache_file_is_measured_again(tmp_path):
    choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=FakeTimer(dict.fromkeys(CANDIDATES, 1.0)))
    (path,) = (tmp_path / "cache" / "dtype").glob("passes-*.json")
    path.write_text('{"tokens": 3000, "tokens_per_s": {}}')
    passes._MEMO.clear()
    timer = FakeTimer(dict.fromkeys(CANDIDATES, 1.0))
    assert choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=timer).reason == "measured"
    assert timer.calls


def test_a_small_model_takes_the_default_without_timing():
    tiny = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2)
    assert choose_pass_tokens(tiny, torch.float32, "sdpa", timer=refuse) == PassChoice(DEFAULT_PASS_TOKENS,
                                                                                      "small model")


def test_a_probe_that_fails_keeps_the_default_and_says_why(caplog):
    def broken(tokens):
        raise RuntimeError("no such kernel")

    with caplog.at_level(logging.WARNING, logger="poolattn.backbone.passes"):
        choice = choose_pass_tokens(SMOLLM2, torch.bfloat16, "sdpa", timer=broken)
    assert choice.tokens == DEFAULT_PASS_TOKENS
    assert choice.reason == "not measurable: RuntimeError: no such kernel"
    assert "no such kernel" in caplog.text


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_the_probe_cuts_each_family_to_a_few_layers(tiny_dirs, family):
    config = AutoConfig.from_pretrained(tiny_dirs[family])
    layers_before = (getattr(config, "text_config", None) or config).num_hidden_layers
    timer = ProbeTimer(config, torch.float32, "sdpa")
    assert len(timer.model.layers) == PROBE_LAYERS
    assert timer(max(CANDIDATES)) > 0 and timer(min(CANDIDATES)) > 0
    assert (getattr(config, "text_config", None) or config).num_hidden_layers == layers_before  # a copy was cut


def test_an_embedder_measures_its_pass_size_once_and_takes_an_override(tiny_llama, monkeypatch):
    from poolattn.model import Embedder

    model = Embedder.from_design(1, str(tiny_llama), device="cpu", lora={"enabled": False})
    asked = []
    monkeypatch.setattr("poolattn.model.embedder.choose_pass_tokens",
                        lambda *args: asked.append(args) or PassChoice(1024, "measured"))
    assert model.pass_tokens() == 1024
    assert model.pass_tokens() == 1024 and len(asked) == 1  # kept for the model's life
    config, dtype, attn, mode = asked[0]
    assert (dtype, mode) == (torch.float32, "causal") and config is model.backbone.config
    model.cpu_pass_tokens = 64
    assert model.pass_tokens() == 64
    for wrong in (0, -512, "2048", 1.5):
        model.cpu_pass_tokens = wrong
        with pytest.raises(InputError, match=f"cpu_pass_tokens={wrong!r} must be a whole number"):
            model.encode(["a text"])
