"""How many padded token positions one CPU encoding pass may hold, chosen by timing passes on this machine.

Why measure: the best pass size depends on the chip. On a 2-core AVX2 EPYC in float32, SmolLM2-135M encoded 256
texts of 2-187 tokens fastest with passes of at most 512 padded positions (18.8 s; 21.3 s, 13% slower, with 32
long texts per pass): small passes keep activations and attention scores in cache. On a 2-core Intel Xeon with AMX
in bfloat16, the same backbone encoded the benchmark's 512 texts 1.1-1.2x faster with passes of 2,048 positions
than of 512 (75.6 against 69.0 texts/s with the EOS head, 67.9 against 56.1 with design 5's): its matrix units want
tall blocks, and a bigger pass pays Python's per-layer overhead fewer times. A constant is a speed bet.

What is timed: the backbone's own architecture cut to `PROBE_LAYERS` decoder layers, built from its config with
random weights in the encoding dtype and attention kernel, on passes of `PROBE_LENGTH`-token texts (every other
text padded by a few positions, so the masked attention path runs) holding each candidate's number of positions.
Each candidate runs the same number of tokens per round; the fastest of interleaved rounds counts. The smallest
candidate within `NEAR_BEST` of the best is chosen (smaller passes use less memory). The result is cached per
machine, layer shapes, dtype, attention kernel and attention mode next to the dtype measurements, and logged. A backbone too
small to time (hidden size under ~256), or one whose config cannot be cut and built, gets `DEFAULT_PASS_TOKENS`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from poolattn.backbone.dtype import MIN_FLOPS_PER_TOKEN, LayerShapes, machine_signature
from poolattn.cache import cache_dir, read_json, write_json_atomic

logger = logging.getLogger(__name__)

DEFAULT_PASS_TOKENS = 512
# 4,096 is not a candidate: on the AMX Xeon in bfloat16 it encoded the benchmark's 512 texts 10-16% slower than
# 2,048 with the trainable heads (designs 3-5: their cross-attention and per-layer states grow with the pass) and no
# faster with the EOS head, while a probe of the bare layers, run again, moved by more than that between the two.
CANDIDATES = (512, 1024, 2048)
PROBE_LENGTH = 128       # tokens per probe text: CANDIDATES are 4 to 16 such texts
PROBE_LAYERS = 2
PROBE_VOCAB = 256        # the embedding table's size does not change a pass's layer time
NEAR_BEST = 0.95         # a candidate at this fraction of the best tokens/s counts as the best
MIN_ROUNDS, MAX_ROUNDS = 2, 4
BUDGET_S = 3.0           # stop adding rounds after this long (at least MIN_ROUNDS)

# A pass timer runs passes holding `tokens` padded positions (the same total work for every candidate) and returns
# the seconds they took.
PassTimer = Callable[[int], float]


@dataclass(frozen=True)
class PassChoice:
    """What the pass size resolved to, and why (`tokens_per_s` is empty when nothing was timed)."""

    tokens: int
    reason: str  # "measured", "cached", "small model", "not measurable: ..."
    tokens_per_s: dict[int, float] = field(default_factory=dict)

    def summary(self) -> str:
        figures = ", ".join(f"{size}: {rate:,.0f}" for size, rate in self.tokens_per_s.items())
        return (f"CPU encoding passes of at most {self.tokens} padded positions ({self.reason}"
                f"{'; probe tokens/s by pass size ' + figures if figures else ''})")


class ProbeTimer:
    """The backbone's architecture cut to PROBE_LAYERS layers, random weights, in `dtype` with kernel `attn`."""

    def __init__(self, hf_config: Any, dtype: torch.dtype, attn: str) -> None:
        from transformers import AutoModel

        config = copy.deepcopy(hf_config)
        text = getattr(config, "text_config", None) or config
        text.num_hidden_layers = PROBE_LAYERS
        if isinstance(getattr(text, "layer_types", None), list):
            text.layer_types = text.layer_types[:PROBE_LAYERS]
        text.vocab_size = PROBE_VOCAB
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if isinstance(getattr(text, name, None), int) and getattr(text, name) >= PROBE_VOCAB:
                setattr(text, name, 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model = AutoModel.from_config(text, dtype=dtype, attn_implementation=attn).eval()
        self._inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _batch(self, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens not in self._inputs:
            rows = max(1, tokens // PROBE_LENGTH)
            ids = torch.randint(1, PROBE_VOCAB, (rows, PROBE_LENGTH), generator=torch.Generator().manual_seed(0))
            mask = torch.ones_like(ids)
            mask[1::2, -8:] = 0  # right padding on every other text, as a length-sorted batch has
            self._inputs[tokens] = (ids, mask)
        return self._inputs[tokens]

    @torch.inference_mode()
    def __call__(self, tokens: int) -> float:
        ids, mask = self._batch(tokens)
        repeats = max(CANDIDATES) // tokens
        start = time.perf_counter()
        for _ in range(repeats):
            self.model(input_ids=ids, attention_mask=mask)
        return time.perf_counter() - start


def measure(timer: PassTimer, *, budget_s: float = BUDGET_S) -> dict[int, float]:
    """Tokens/s of each candidate pass size, from the fastest of interleaved rounds (after one warm-up round)."""
    for tokens in CANDIDATES:
        timer(tokens)
    best = {tokens: float("inf") for tokens in CANDIDATES}
    start = time.perf_counter()
    for round_ in range(1, MAX_ROUNDS + 1):
        for tokens in CANDIDATES:
            best[tokens] = min(best[tokens], timer(tokens))
        if round_ >= MIN_ROUNDS and time.perf_counter() - start > budget_s:
            break
    work = max(CANDIDATES)  # every candidate ran this many positions per round
    return {tokens: work / max(seconds, 1e-9) for tokens, seconds in best.items()}


def pick(tokens_per_s: dict[int, float]) -> int:
    """The smallest pass size within NEAR_BEST of the fastest."""
    fastest = max(tokens_per_s.values())
    return min(size for size, rate in tokens_per_s.items() if rate >= NEAR_BEST * fastest)


def cache_key(signature: dict[str, Any], shapes: LayerShapes, dtype: torch.dtype, attn: str, mode: str) -> str:
    """A stable hash of everything the measurement depends on."""
    payload = json.dumps({"machine": signature, "shapes": asdict(shapes), "dtype": str(dtype), "attn": attn,
                          "mode": mode,
                          "candidates": CANDIDATES, "length": PROBE_LENGTH, "layers": PROBE_LAYERS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


_MEMO: dict[str, PassChoice] = {}


def _cached_choice(path: Path) -> PassChoice | None:
    """The choice an earlier process measured and saved at `path` (None: no usable file)."""
    data = read_json(path)
    try:
        rates = {int(size): float(rate) for size, rate in data["tokens_per_s"].items()}
        if data["tokens"] not in CANDIDATES or set(rates) != set(CANDIDATES):
            return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    choice = PassChoice(data["tokens"], "cached", rates)
    logger.info("%s [%s]", choice.summary(), path)
    return choice


def choose_pass_tokens(hf_config: Any, dtype: torch.dtype, attn: str, mode: str = "causal", *,
                       timer: PassTimer | None = None, use_cache: bool = True) -> PassChoice:
    """The CPU pass size for encoding with this backbone config (in attention `mode`, which its config already
    carries), dtype and attention kernel on this machine."""
    shapes = LayerShapes.from_config(hf_config)
    if shapes.flops_per_token < MIN_FLOPS_PER_TOKEN:
        return PassChoice(DEFAULT_PASS_TOKENS, "small model")
    signature = machine_signature()
    key = cache_key(signature, shapes, dtype, attn, mode)
    path = cache_dir("dtype") / f"passes-{key}.json"
    known = (_MEMO.get(key) or _cached_choice(path)) if use_cache else None
    if known is not None:
        _MEMO[key] = known
        return known
    start = time.perf_counter()
    try:
        timer = timer or ProbeTimer(hf_config, dtype, attn)
        rates = measure(timer)
    except Exception as exc:  # noqa: BLE001 - an architecture the probe cannot cut: keep the default, say why
        choice = PassChoice(DEFAULT_PASS_TOKENS, f"not measurable: {type(exc).__name__}: {exc}")
        logger.warning("%s", choice.summary())
        _MEMO[key] = choice
        return choice
    seconds = time.perf_counter() - start
    choice = PassChoice(pick(rates), "measured", {size: round(rate, 1) for size, rate in rates.items()})
    if use_cache:
        record = {"tokens": choice.tokens, "tokens_per_s": choice.tokens_per_s, "seconds": round(seconds, 3),
                  "dtype": str(dtype), "attn": attn, "mode": mode, "shapes": asdict(shapes), "machine": signature,
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(path, record)
        _MEMO[key] = choice
    logger.info("%s [measured in %.1f s, %d threads]", choice.summary(), seconds, signature["threads"])
    return choice
