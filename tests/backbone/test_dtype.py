"""`dtype: auto`: the faster dtype wins, explicit dtypes win over it, the cache is per machine and torch version."""

from __future__ import annotations

import time

import pytest
import torch

from poolattn.backbone import dtype as auto
from poolattn.backbone.dtype import DtypeChoice, LayerShapes, cache_key, choose_cpu_dtype, machine_signature, measure
from poolattn.backbone.load import resolve_dtype

SMOLLM2 = LayerShapes(hidden=576, intermediate=1536, q_out=576, kv_out=192)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLATTN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(auto, "_MEMO", {})


class FakeTimer:
    """Seconds per block by dtype name, and a count of calls."""

    def __init__(self, float32: float, bfloat16: float) -> None:
        self.seconds = {torch.float32: float32, torch.bfloat16: bfloat16}
        self.calls = 0

    def __call__(self, dtype: torch.dtype, purpose: str) -> float:
        self.calls += 1
        return self.seconds[dtype]


def refuse(dtype, purpose):
    raise AssertionError("timed although it should not have")


@pytest.mark.parametrize(("float32", "bfloat16", "expected"), [(0.03, 0.01, "bfloat16"), (0.01, 0.05, "float32")])
def test_the_faster_dtype_wins(float32, bfloat16, expected):
    for purpose in ("encode", "train"):
        choice = choose_cpu_dtype(SMOLLM2, purpose, timer=FakeTimer(float32, bfloat16))
        assert (choice.dtype, choice.reason) == (expected, "measured")


def test_a_near_tie_goes_to_float32():
    # bfloat16 5% faster: under BF16_MARGIN (1.1), not worth its rounding
    assert choose_cpu_dtype(SMOLLM2, "encode", timer=FakeTimer(0.0105, 0.01)).dtype == "float32"
    assert choose_cpu_dtype(SMOLLM2, "train", timer=FakeTimer(0.012, 0.01)).dtype == "bfloat16"


def test_gflops_are_the_blocks_flops_over_the_fastest_round():
    times = iter([0.02, 0.04, 0.01, 0.05, 0.03, 0.04, 0.02, 0.04, 0.02, 0.04])  # float32, bfloat16, ...
    gflops = measure(SMOLLM2, "encode", lambda dtype, purpose: next(times), budget_s=10.0)
    # one layer: 2 * (576*576*2 + 576*192*2 + 576*1536*3) FLOPs per token, 128 rows for encoding
    flops = 2 * (576 * 576 * 2 + 576 * 192 * 2 + 576 * 1536 * 3) * 128
    assert SMOLLM2.flops("encode", 128) == flops and SMOLLM2.flops("train", 64) == flops  # train: 2x, half the rows
    assert gflops["float32"] == pytest.approx(flops / 0.01 / 1e9)
    assert gflops["bfloat16"] == pytest.approx(flops / 0.04 / 1e9)


def test_a_decisive_gap_stops_after_two_rounds():
    timer = FakeTimer(0.01, 0.05)
    measure(SMOLLM2, "train", timer, budget_s=10.0)
    assert timer.calls == 2 * auto.MIN_ROUNDS
    close = FakeTimer(0.01, 0.012)
    measure(SMOLLM2, "train", close, budget_s=10.0)
    assert close.calls == 2 * auto.MAX_ROUNDS


def test_a_peak_figure_runs_every_round_it_asks_for():
    timer = FakeTimer(0.01, 0.05)  # decisive at once, but a peak needs the fastest of many rounds
    measure(SMOLLM2, "encode", timer, rounds=12)
    assert timer.calls == 2 * 12


def test_a_cache_hit_skips_the_timing(tmp_path):
    first = FakeTimer(0.03, 0.01)
    assert choose_cpu_dtype(SMOLLM2, "encode", timer=first).dtype == "bfloat16"
    assert first.calls > 0
    auto._MEMO.clear()  # a new process: only the file remains
    again = choose_cpu_dtype(SMOLLM2, "encode", timer=refuse)
    assert (again.dtype, again.reason) == ("bfloat16", "cached")
    assert again.gflops["bfloat16"] == pytest.approx(3 * again.gflops["float32"], rel=1e-3)
    assert len(list((tmp_path / "cache" / "dtype").glob("encode-*.json"))) == 1
    # training is measured separately: no hit from the encode entry
    assert choose_cpu_dtype(SMOLLM2, "train", timer=FakeTimer(0.01, 0.03)).reason == "measured"


def test_a_close_call_is_not_cached(tmp_path):
    assert choose_cpu_dtype(SMOLLM2, "encode", timer=FakeTimer(0.012, 0.01)).dtype == "bfloat16"  # 1.2x
    assert choose_cpu_dtype(SMOLLM2, "encode", timer=refuse).reason == "measured"  # this process: decided
    assert not list((tmp_path / "cache" / "dtype").glob("*.json"))
    auto._MEMO.clear()
    timer = FakeTimer(0.012, 0.01)
    choose_cpu_dtype(SMOLLM2, "encode", timer=timer)  # the next process measures again
    assert timer.calls > 0


def test_the_cache_key_changes_with_torch_version_and_shapes(monkeypatch):
    before = cache_key(machine_signature(), SMOLLM2, "encode")
    assert cache_key(machine_signature(), SMOLLM2, "train") != before
    assert cache_key(machine_signature(), LayerShapes(576, 2048, 576, 192), "encode") != before
    choose_cpu_dtype(SMOLLM2, "encode", timer=FakeTimer(0.03, 0.01))
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert cache_key(machine_signature(), SMOLLM2, "encode") != before
    auto._MEMO.clear()
    timer = FakeTimer(0.01, 0.03)
    choice = choose_cpu_dtype(SMOLLM2, "encode", timer=timer)  # a new torch: measured again, not read back
    assert (choice.dtype, choice.reason) == ("float32", "measured") and timer.calls > 0


def test_a_small_model_is_float32_without_timing():
    tiny = LayerShapes(hidden=32, intermediate=64, q_out=32, kv_out=16)
    assert choose_cpu_dtype(tiny, "encode", timer=refuse) == DtypeChoice("encode", "float32", "small model")


def test_explicit_dtypes_win_over_auto(monkeypatch, tiny_llama):
    monkeypatch.setattr("poolattn.backbone.load.auto_choice", lambda *a, **k: refuse(None, None))
    assert resolve_dtype("float32", "cpu", location=str(tiny_llama)) is torch.float32
    assert resolve_dtype("bfloat16", "cpu", location=str(tiny_llama), purpose="train") is torch.bfloat16


def test_auto_resolves_through_the_measurement_for_each_purpose(monkeypatch, tiny_llama):
    asked = []

    def fake(location, device, purpose="encode", **kwargs):
        asked.append((location, purpose))
        return DtypeChoice(purpose, "bfloat16" if purpose == "train" else "float32", "measured")

    monkeypatch.setattr("poolattn.backbone.load.auto_choice", fake)
    assert resolve_dtype("auto", "cpu", location=str(tiny_llama)) is torch.float32
    assert resolve_dtype("auto", "cpu", location=str(tiny_llama), purpose="train") is torch.bfloat16
    assert asked == [(str(tiny_llama), "encode"), (str(tiny_llama), "train")]


def test_layer_shapes_read_the_backbone_config(tiny_dirs):
    from transformers import AutoConfig

    llama = LayerShapes.from_config(AutoConfig.from_pretrained(tiny_dirs["llama"]))
    assert llama == LayerShapes(hidden=32, intermediate=64, q_out=32, kv_out=16)  # 4 heads of 8, 2 KV heads
    qwen3 = LayerShapes.from_config(AutoConfig.from_pretrained(tiny_dirs["qwen3"]))  # head_dim given: 8
    assert (qwen3.q_out, qwen3.kv_out) == (32, 16)


def _model_seconds(model: torch.nn.Module, ids: torch.Tensor, reps: int = 5) -> float:
    """Fastest of `reps` forwards: an independent timing of a whole decoder layer, not of its projections."""
    with torch.inference_mode():
        model(input_ids=ids)
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            model(input_ids=ids)
            best = min(best, time.perf_counter() - start)
    return best


@pytest.fixture
def one_thread():
    """Both timings on one thread: on a CPU shared with other work, a second thread's waits swamp the figures."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_real_measurement_agrees_with_a_decoder_layers_timing(one_thread):
    """SmolLM2's layer shapes on this CPU: where a real decoder layer is >1.3x faster in one dtype, auto picks it."""
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(vocab_size=256, hidden_size=576, intermediate_size=1536, num_hidden_layers=1,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=128)
    assert LayerShapes.from_config(config) == SMOLLM2
    choice = choose_cpu_dtype(SMOLLM2, "encode")
    assert choice.reason == "measured" and all(v > 0 for v in choice.gflops.values())
    torch.manual_seed(0)
    model = LlamaModel(config).eval()
    ids = torch.randint(0, 256, (4, 32))
    seconds = {"float32": _model_seconds(model, ids)}
    seconds["bfloat16"] = _model_seconds(model.to(torch.bfloat16), ids)
    ratio = seconds["float32"] / seconds["bfloat16"]
    if ratio > 1.3:
        assert choice.dtype == "bfloat16", (choice, seconds)
    elif ratio < 1 / 1.3:
        assert choice.dtype == "float32", (choice, seconds)
    else:  # within 1.3x either way: both are acceptable picks
        assert choice.dtype in ("float32", "bfloat16")
