"""`dtype: auto`: float32 or bfloat16, chosen by timing both on this machine at the backbone's own layer shapes.

Why measure: bfloat16's speed on a CPU depends on the chip, not on the code. With torch 2.13, a one-thread
512x576 @ 576x1536 matmul ran at 78 GFLOP/s in float32 and 27 GFLOP/s in bfloat16 on a 2-core Intel Xeon whose
torch CPU capability is AVX512 (no AMX), at 117 against 16 GFLOP/s (two threads) on an AVX2-only AMD EPYC, while
on an EPYC with avx512_bf16 bfloat16 was about 3x faster. A hard-coded dtype is a 3-7x speed bet on the user's CPU.

What is timed: the seven projections of one decoder layer (q, k, v, o, gate, up, down) at the backbone's sizes on
a block of `ROWS` token rows; the forward alone for encoding, the forward plus the input gradient for training
(the backbone is frozen under LoRA, so its weight gradients are never computed). Matrix products are where the
time goes; attention over short texts and the elementwise work follow the same dtype. The result is cached per
machine (CPU model and flags, torch version and CPU capability, threads) and layer shapes in the project's cache
folder, so the measurement (about a second at most on an idle CPU) runs once per machine; the decision and figures
are logged. A close result (within CLEAR_WINNER) is not cached: on a busy machine it may be noise.

bfloat16 must be at least `BF16_MARGIN` times faster to be chosen: it costs precision (EOS pooling is sensitive
to it), so a near-tie goes to float32. CUDA takes bfloat16 where the device supports it, without timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from poolattn.cache import cache_dir, read_json, write_json_atomic

logger = logging.getLogger(__name__)

PURPOSES = ("encode", "train")
CANDIDATES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# token rows per timed block (4 or 2 texts of 32 tokens): enough for the matrix kernels' steady state, small
# enough that a slow bfloat16 backward block stays near a quarter of a second
ROWS = {"encode": 128, "train": 64}
BF16_MARGIN = 1.1          # bfloat16 must be this much faster than float32 to be chosen
MIN_FLOPS_PER_TOKEN = 1e6  # below this (hidden size under ~256) overheads dominate: float32, nothing to time
BUDGET_S = 0.3             # per purpose: stop adding timing rounds after this long (at least MIN_ROUNDS)
MIN_ROUNDS, MAX_ROUNDS = 2, 5
DECISIVE = 2.0             # one dtype this much faster after MIN_ROUNDS: no more rounds needed
CLEAR_WINNER = 1.3         # only a result this clear is cached: a closer one is measured again in the next process

# A timer runs one block of the layer's projections in `dtype` for `purpose` and returns its seconds.
Timer = Callable[[torch.dtype, str], float]


@dataclass(frozen=True)
class LayerShapes:
    """The (in, out) sizes of one decoder layer's seven projections."""

    hidden: int
    intermediate: int
    q_out: int
    kv_out: int

    @classmethod
    def from_config(cls, config: Any) -> LayerShapes:
        """From a Hugging Face model config (Llama, Mistral, Qwen2/3, Gemma3 field names)."""
        config = getattr(config, "text_config", None) or config
        hidden = config.hidden_size
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
        return cls(hidden, intermediate, heads * head_dim, kv_heads * head_dim)

    @property
    def linears(self) -> list[tuple[int, int]]:
        h, i, q, kv = self.hidden, self.intermediate, self.q_out, self.kv_out
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    @property
    def flops_per_token(self) -> int:
        """Forward multiply-adds x 2 of one layer's projections for one token."""
        return 2 * sum(a * b for a, b in self.linears)

    def flops(self, purpose: str, rows: int) -> float:
        """FLOPs of one timed block: the forward, plus the input gradient (another forward's worth) for training."""
        return (1 if purpose == "encode" else 2) * self.flops_per_token * rows

    def describe(self) -> str:
        return f"hidden {self.hidden}, intermediate {self.intermediate}, q {self.q_out}, kv {self.kv_out}"


@dataclass(frozen=True)
class DtypeChoice:
    """What `auto` resolved to for one purpose, and why (`gflops` is empty when nothing was timed)."""

    purpose: str
    dtype: str
    reason: str  # "measured", "cached", "cuda", "small model"
    gflops: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        figures = ", ".join(f"{name} {value:.1f} GFLOP/s" for name, value in self.gflops.items())
        return f"dtype auto for {self.purpose}: {self.dtype} ({self.reason}{': ' + figures if figures else ''})"


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r} is not one of {list(PURPOSES)}")


def machine_signature() -> dict[str, Any]:
    """What decides the dtype's speed: CPU model and flags, torch version and its CPU capability, threads."""
    cpu, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not cpu:
                cpu = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or platform.machine(), "flags": flags, "machine": platform.machine(), "torch": torch.__version__,
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def cache_key(signature: dict[str, Any], shapes: LayerShapes, purpose: str) -> str:
    """A stable hash of everything the measurement depends on."""
    payload = json.dumps({"machine": signature, "shapes": asdict(shapes), "purpose": purpose, "rows": ROWS[purpose]},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class LinearTimer:
    """Times one block of a layer's projections (random weights) at `rows` token rows, in each dtype."""

    def __init__(self, shapes: LayerShapes, rows: int) -> None:
        self.shapes, self.rows = shapes, rows
        self._tensors: dict[torch.dtype, tuple[list[torch.Tensor], dict[int, torch.Tensor]]] = {}

    def _prepared(self, dtype: torch.dtype):
        if dtype not in self._tensors:
            gen = torch.Generator().manual_seed(0)
            weights = [torch.randn(b, a, generator=gen).mul_(a ** -0.5).to(dtype) for a, b in self.shapes.linears]
            inputs = {a: torch.randn(self.rows, a, generator=gen).to(dtype) for a, _ in self.shapes.linears}
            self._tensors[dtype] = (weights, inputs)
        return self._tensors[dtype]

    def __call__(self, dtype: torch.dtype, purpose: str) -> float:
        weights, inputs = self._prepared(dtype)
        pairs = [(w, inputs[w.shape[1]]) for w in weights]
        if purpose == "encode":
            with torch.inference_mode():
                start = time.perf_counter()
                for w, x in pairs:
                    F.linear(x, w)
                return time.perf_counter() - start
        leaves = [x.detach().requires_grad_(True) for _, x in pairs]
        start = time.perf_counter()
        for (w, _), x in zip(pairs, leaves):
            y = F.linear(x, w)
            y.backward(torch.ones_like(y))  # frozen weights: only the input gradient, as under LoRA
        return time.perf_counter() - start


def measure(shapes: LayerShapes, purpose: str, timer: Timer | None = None, *, rows: int | None = None,
            budget_s: float = BUDGET_S, rounds: int | None = None) -> dict[str, float]:
    """GFLOP/s of float32 and bfloat16 for `purpose`, from the fastest of interleaved rounds.

    The fastest round is the machine's capability (slower ones are first-call set-up or other processes taking
    the CPU). Rounds stop after MIN_ROUNDS once the budget is spent or one dtype is DECISIVE times faster: on a
    CPU without fast bfloat16 a bfloat16 training block takes half a second, and one more changes nothing.
    That is enough to choose a dtype, not to state a peak: `rounds` runs exactly that many rounds (a figure that
    divides by the peak, such as a utilisation, needs the fastest round of many; one slow spell in two rounds
    read 64 GFLOP/s where 95-103 was measured before and after).
    """
    _check_purpose(purpose)
    rows = rows or ROWS[purpose]
    timer = timer or LinearTimer(shapes, rows)
    best = {name: float("inf") for name in CANDIDATES}
    start = time.perf_counter()
    for round_ in range(1, (rounds or MAX_ROUNDS) + 1):
        for name, dtype in CANDIDATES.items():
            best[name] = min(best[name], timer(dtype, purpose))
        if rounds is None and round_ >= MIN_ROUNDS and (time.perf_counter() - start > budget_s
                                     or max(best.values()) >= DECISIVE * min(best.values())):
            break
    flops = shapes.flops(purpose, rows)
    return {name: flops / max(seconds, 1e-9) / 1e9 for name, seconds in best.items()}


def pick(gflops: dict[str, float]) -> str:
    """bfloat16 when it is at least BF16_MARGIN times faster than float32, else float32."""
    return "bfloat16" if gflops["bfloat16"] >= BF16_MARGIN * gflops["float32"] else "float32"


_MEMO: dict[str, DtypeChoice] = {}


def _cached_choice(path: Path, purpose: str, shapes: LayerShapes) -> DtypeChoice | None:
    """The choice an earlier process measured and saved at `path` (None: no usable file)."""
    data = read_json(path)
    try:
        if data["dtype"] not in CANDIDATES or set(data["gflops"]) != set(CANDIDATES):
            return None
    except (KeyError, TypeError):
        return None
    choice = DtypeChoice(purpose, data["dtype"], "cached", data["gflops"])
    logger.info("%s [%s; %s]", choice.summary(), shapes.describe(), path)
    return choice


def choose_cpu_dtype(shapes: LayerShapes, purpose: str, *, timer: Timer | None = None,
                     use_cache: bool = True) -> DtypeChoice:
    """float32 or bfloat16 for `purpose` on this CPU at `shapes`: from the cache, else measured (and cached).

    Raises:
        ValueError: `purpose` is not 'encode' or 'train'.
    """
    _check_purpose(purpose)
    if shapes.flops_per_token < MIN_FLOPS_PER_TOKEN:
        return DtypeChoice(purpose, "float32", "small model")
    signature = machine_signature()
    key = cache_key(signature, shapes, purpose)
    path = cache_dir("dtype") / f"{purpose}-{key}.json"
    known = (_MEMO.get(key) or _cached_choice(path, purpose, shapes)) if use_cache else None
    if known is not None:
        _MEMO[key] = known
        return known
    start = time.perf_counter()
    gflops = measure(shapes, purpose, timer)
    choice = DtypeChoice(purpose, pick(gflops), "measured", {k: round(v, 2) for k, v in gflops.items()})
    seconds = time.perf_counter() - start
    record = {"dtype": choice.dtype, "gflops": choice.gflops, "seconds": round(seconds, 3), "rows": ROWS[purpose],
              "shapes": asdict(shapes), "machine": signature,
              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    clear = max(gflops.values()) >= CLEAR_WINNER * min(gflops.values())
    if use_cache and not clear:
        _MEMO[key] = choice  # a close call may be other processes' noise: decided for this process only
        logger.info("dtype auto for %s: float32 and bfloat16 within %.1fx of each other; not cached, measured "
                    "again next time", purpose, CLEAR_WINNER)
    elif use_cache:
        write_json_atomic(path, record)
        _MEMO[key] = choice
    logger.info("%s [%s; measured in %.2f s, capability %s, %d threads]", choice.summary(), shapes.describe(),
                seconds, signature["capability"], signature["threads"])
    return choice


def auto_choice(location: str, device: torch.device | str, purpose: str = "encode", *,
                trust_remote_code: bool = False) -> DtypeChoice:
    """What `dtype: auto` means for the backbone at `location` (a folder or hub id) on `device`."""
    _check_purpose(purpose)
    device = torch.device(device)
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return DtypeChoice(purpose, "bfloat16" if supported else "float32", "cuda")
    if device.type != "cpu":
        return DtypeChoice(purpose, "float32", device.type)
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    return choose_cpu_dtype(LayerShapes.from_config(hf_config), purpose)
