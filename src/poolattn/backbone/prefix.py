"""The frozen-prefix cache: run the layers below the first adapted one once per text, and only the rest after.

With LoRA on the upper layers only (configs/demo.yaml: the upper 12 of SmolLM2's 30) and no dropout, the
embeddings and layers 0..k-1 are a fixed function of a text's token ids, its attention mode and its positions.
Their output (the state entering layer k) is kept per text in a `PrefixStore`; a batch then runs only layers
k..N-1 and the final norm from it. The multi-layer head also needs one pooled vector per frozen layer; those are
kept per text too (they depend on the pooling mask, which is part of their key).

Exactness. Both halves run through the model's own `forward`, so masks, rotary embeddings and position ids are
built by the same code as in a full pass: the prefix with the layer list cut at k and the final norm skipped,
the suffix from `inputs_embeds` with layers 0..k-1 replaced by a pass-through. Padded positions enter the suffix
as zeros; they are masked as keys, and every head reads real tokens only. The cache switches itself off (and
logs why) where it would not be exact: an unverified model family, a trainable parameter or LoRA module below
k, dropout active in training, a head that reads every layer without per-layer summaries. The first batch of
each model is also run both ways and compared, so a transformers release that changes the layer-calling
convention switches the cache off instead of changing results.

Keys: the exact token ids of the text, plus a SHA-256 over the model class, its config, the attention kernel
and mode, dtype, device type, autocast state, k, and the bytes of every frozen weight (embeddings, layers
0..k-1, rotary buffers). A cache from another backbone, revision or dtype therefore never matches.

Scope. A matrix product's rounding depends on its shape: on the 2-core AMX Xeon, a bfloat16 `F.linear` row
computed among 64 rows differs from the same row among 512. A text's frozen state therefore carries the shape of
the pass that made it, and a run that reads states made in another run's passes can round differently from a run
that made them itself (in float32 by about 5e-7; in bfloat16 a 40-step SmolLM2-135M run then drifted by up to 0.22
in a step's loss). Training sets `scope` to its batch stream (training data, seed, batch and chunk sizes; see
`training.run.prefix_scope`), so runs share entries only when they see the same batches in the same passes: the
designs of one attention mode and seed. A run's results then never depend on which other runs shared its process,
or on a study being resumed. Evaluation keeps the empty scope: every model of a mode encodes a task in the same
passes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from poolattn.backbone.attention import attention_mode
from poolattn.backbone.load import lora_layer_indices
from poolattn.backbone.prefix_store import PrefixStore, shared_store
from poolattn.pooling.multilayer import default_layer_summary, summarize_layer

logger = logging.getLogger(__name__)

# Families whose decoder forward was checked to run from `inputs_embeds` unchanged and to build one mask for all
# layers (tests/backbone/test_prefix.py); Gemma3 scales embeddings and picks rotary tables per layer type.
VERIFIED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
PREFIX_CACHE_MODES = ("auto", "off")
# The first-batch cross-check: the largest difference allowed, relative to the largest state value.
_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 5e-3}
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
# config keys that name a checkpoint rather than describe its computation
_NAME_KEYS = {"_name_or_path", "name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype",
              "_commit_hash"}


@dataclass(frozen=True)
class PrefixPlan:
    """Whether the cache runs for a model and, if so, where it cuts: layers < `first_adapted` are cached."""

    first_adapted: int
    num_layers: int
    context: bytes  # digest of everything a frozen state depends on except the token ids
    reason: str | None  # why the cache is off; None when it is on


class _PassThrough(nn.Module):
    """Stands in for a frozen decoder layer in the suffix pass: the cached state goes through unchanged."""

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return hidden_states


def base_model(backbone: nn.Module) -> nn.Module:
    """The transformer body under a peft wrapper (or the model itself)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


def _output(value: Any) -> Tensor:
    return value[0] if isinstance(value, tuple) else value


@contextmanager
def _layers_swapped(base: nn.Module, layers: list[nn.Module], *, skip_norm: bool) -> Iterator[None]:
    """Run `base` with another layer list (and no final norm): the forward's own mask and rotary code stay."""
    original, norm = base.layers, base.norm
    base.layers = nn.ModuleList(layers)
    if skip_norm:
        base.norm = nn.Identity()
    try:
        yield
    finally:
        base.layers, base.norm = original, norm


@contextmanager
def layer_states(layers: Sequence[nn.Module], indices: Iterable[int],
                 keep: Callable[[Tensor], Tensor] | None = None) -> Iterator[dict[int, Tensor]]:
    """{i: keep(hidden state i)} for `indices`, numbered as HF's `hidden_states`, as the layers run.

    0 is the input of `layers[0]` (the embeddings), 0 < i < N the output of `layers[i - 1]`; i >= N is skipped: HF's
    hidden state N is the last layer's output after the final norm, so read it from the model's output. `keep`
    (default: the state itself) runs inside the forward, so a caller that keeps a summary lets each layer's states
    go at once.
    """
    out: dict[int, Tensor] = {}
    keep = keep or (lambda state: state)
    indices = list(indices)

    def record(i: int, state: Tensor) -> None:
        if i not in out:  # a layer list that calls a module twice keeps the first
            out[i] = keep(state)

    handles = [layers[i - 1].register_forward_hook(lambda _m, _a, o, i=i: record(i, _output(o)))
               for i in indices if 0 < i < len(layers)]
    if 0 in indices and len(layers):
        handles.append(layers[0].register_forward_pre_hook(
            lambda _m, args, kwargs: record(0, args[0] if args else kwargs["hidden_states"]), with_kwargs=True))
    try:
        yield out
    finally:
        for handle in handles:
            handle.remove()


def _why_dropout(base: nn.Module) -> str | None:
    if not base.training:
        return None
    for name, module in base.named_modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            return f"dropout p={module.p} in {name} is active in training; the cache is exact only without dropout"
    rate = getattr(base.config, "attention_dropout", 0.0) or 0.0
    if rate > 0:
        return f"attention_dropout={rate} is active in training; the cache is exact only without dropout"
    return None


def first_adapted_layer(backbone: nn.Module, lora_layers: list[int] | None, lora_enabled: bool) -> tuple[int, str]:
    """(k, why): the lowest layer that is adapted (LoRA, trainable, or configured for LoRA); k=0 means none frozen.

    The configured LoRA layers count even after the adapters were merged into the weights, so a merged model
    cuts where its trained form did, and shares its frozen states with the other designs.
    """
    base = base_model(backbone)
    num_layers = len(base.layers)
    k, why = num_layers, "no adapted layer"
    if lora_enabled:
        indices = lora_layer_indices(lora_layers, num_layers)
        first = 0 if indices is None else indices[0]
        if first < k:
            k, why = first, f"LoRA starts at layer {first}"
    for name, param in base.named_parameters():
        if not (param.requires_grad or "lora_" in name):
            continue
        match = _LAYER.search(name)
        if match is not None:
            layer = int(match.group(1))
        elif name.startswith("embed_tokens") or ".embed_tokens." in name:
            layer = 0
        else:
            continue  # the final norm and anything after the layers
        if layer < k:
            kind = "LoRA" if "lora_" in name else "trainable"
            k, why = layer, f"{kind} parameter {name}"
    return k, why


def _tensor_bytes(tensor: Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def prefix_digest(base: nn.Module, first_adapted: int, extra: dict[str, Any]) -> bytes:
    """SHA-256 of the model class, config, `extra` facts, and the bytes of every frozen weight and buffer."""
    digest = hashlib.sha256()
    config = {k: v for k, v in base.config.to_dict().items() if k not in _NAME_KEYS}
    facts = {"class": type(base).__name__, "config": config, "first_adapted": first_adapted,
             "attn_implementation": getattr(base.config, "_attn_implementation", None), **extra}
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    parts = [("embed_tokens", base.embed_tokens), ("rotary_emb", getattr(base, "rotary_emb", nn.Identity()))]
    parts += [(f"layers.{i}", base.layers[i]) for i in range(first_adapted)]
    for prefix, module in parts:
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            digest.update(f"{prefix}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.digest()


def _frozen_versions(base: nn.Module, first_adapted: int) -> int:
    """A counter that changes when any frozen weight is modified in place (each tensor's `_version`)."""
    modules = [base.embed_tokens, *list(base.layers)[:first_adapted]]
    return sum(p._version for m in modules for p in m.parameters())


def _standard_layout(attention_mask: Tensor, position_ids: Tensor | None) -> bool:
    """Real tokens are one block per row (left or right padding) numbered 0..n-1, as `TextTokenizer` makes them."""
    if position_ids is None:
        return False
    mask = attention_mask.bool()
    expected = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    if not torch.equal(position_ids[mask], expected[mask]):
        return False
    changes = (mask[:, 1:] != mask[:, :-1]).sum(dim=1)
    starts_real, ends_real = mask[:, 0], mask[:, -1]
    # one block: at most one change, or two when the row starts and ends padded (never produced: refuse)
    return bool(torch.all((changes == 0) | ((changes == 1) & (starts_real | ends_real))))


class PrefixCache:
    """Runs an `Embedder`'s backbone as cached frozen prefix + live suffix; `pooled` returns None where it is off."""

    def __init__(self, store: PrefixStore | None = None) -> None:
        self.store = store if store is not None else shared_store()
        self._plan_key: tuple | None = None
        self._plan: PrefixPlan | None = None
        self._digests: dict[tuple, bytes] = {}
        self._checked: set[bytes] = set()
        self._said: set[str] = set()
        self.last_reason: str | None = None  # why the last batch ran without the cache (None: it ran with it)
        self.scope: tuple = ()  # part of every key: entries are shared only within one scope (see the module doc)

    # ------------------------------------------------------------------------------------------ planning
    def _say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            logger.info("%s", message)

    def plan(self, model: nn.Module) -> PrefixPlan:
        """Where the cache cuts `model` (an `Embedder`), or why it is off; logged once per distinct outcome."""
        base = base_model(model.backbone)
        model_type = getattr(base.config, "model_type", type(base).__name__)
        param = next(base.parameters())
        trainable = tuple(p.requires_grad for p in base.parameters())
        key = (id(base), model_type, param.dtype, param.device, base.training, hash(trainable),
               model.config.lora.dropout, tuple(model.config.lora_layers or ()), model.config.lora.enabled,
               type(model.pooler).__name__)
        if key == self._plan_key and self._plan is not None:
            plan = self._plan
            if plan.reason is None and _frozen_versions(base, plan.first_adapted) != self._versions:
                self._plan_key = None  # a frozen weight changed in place: digest again
                return self.plan(model)
            return plan
        num_layers = getattr(base.config, "num_hidden_layers", 0)
        reason = None
        k = 0
        if model_type not in VERIFIED_FAMILIES or not all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm")):
            reason = f"model_type {model_type!r} is not verified to run layer by layer; verified: {list(VERIFIED_FAMILIES)}"
        else:
            k, why = first_adapted_layer(model.backbone, model.config.lora_layers, model.config.lora.enabled)
            reason = _why_dropout(base)
            if reason is None and k == 0:
                reason = f"no frozen layer below the first adapted one ({why})"
            if reason is None and model.pooler.uses_all_layers and not hasattr(model.pooler, "summarize"):
                reason = f"head {type(model.pooler).__name__} reads every layer and has no per-layer summary"
        context = b""
        if reason is None:
            autocast = torch.is_autocast_enabled(param.device.type)
            extra = {"mode": attention_mode(base), "dtype": str(param.dtype), "device": param.device.type}
            digest_key = (id(base), k, _frozen_versions(base, k), str(param.dtype), str(param.device),
                          extra["mode"], autocast)
            if digest_key not in self._digests:
                self._digests[digest_key] = prefix_digest(base, k, extra)
            context = self._digests[digest_key]
            self._versions = _frozen_versions(base, k)
            self._say(f"prefix cache on: layers 0..{k - 1} of {num_layers} frozen ({extra['mode']}, {param.dtype}; "
                      f"cut at {why})")
        else:
            self._say(f"prefix cache off: {reason}")
        self._plan_key, self._plan = key, PrefixPlan(k, num_layers, context, reason)
        return self._plan

    # -------------------------------------------------------------------------------------------- passes
    def _run_prefix(self, base: nn.Module, k: int, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                    indices: list[int]) -> tuple[Tensor, dict[int, Tensor]]:
        """(B, T, H) state entering layer k, and {i: (B, T, H)} hidden states i <= k asked for in `indices`."""
        layers = list(base.layers)
        with _layers_swapped(base, layers[:k], skip_norm=True), layer_states(
                layers, [i for i in indices if i < k]) as seen:
            state = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False).last_hidden_state
        hidden = dict(seen)
        hidden[k] = state
        return state, hidden

    def _run_suffix(self, base: nn.Module, k: int, state: Tensor, attention_mask: Tensor, position_ids: Tensor,
                    indices: list[int]) -> dict[int, Tensor]:
        """{i: (B, T, H)} hidden states k < i <= N asked for in `indices` (N: after the final norm)."""
        layers = list(base.layers)
        n = len(layers)
        skipped = [_PassThrough() for _ in range(k)]
        with _layers_swapped(base, skipped + layers[k:], skip_norm=False), layer_states(
                layers, [i for i in indices if i > k]) as seen:  # layer_states skips N itself
            last = base(inputs_embeds=state, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=False).last_hidden_state
        hidden = dict(seen)
        hidden[n] = last
        return hidden

    # ------------------------------------------------------------------------------------------- pooling
    def pooled(self, model: nn.Module, input_ids: Tensor, attention_mask: Tensor, pool_mask: Tensor,
               position_ids: Tensor | None) -> Tensor | None:
        """(B, D) float32 pooled vectors computed from cached frozen states, or None where the cache is off."""
        plan = self.plan(model)
        if plan.reason is None and not _standard_layout(attention_mask, position_ids):
            self.last_reason = "the batch is not laid out as TextTokenizer.collate makes it"
            return None
        self.last_reason = plan.reason
        if plan.reason is not None:
            return None
        base = base_model(model.backbone)
        k, n = plan.first_adapted, plan.num_layers
        pooler = model.pooler
        multilayer = pooler.uses_all_layers
        wanted = list(pooler.layers) if multilayer else [n]
        # summaries cached per text: hidden states up to the cut; the last one (after the final norm) is always live
        frozen = [i for i in wanted if i <= k and i < n] if multilayer else []
        autocast = (torch.is_autocast_enabled(input_ids.device.type),
                    str(torch.get_autocast_dtype(input_ids.device.type)))
        context = (plan.context, autocast, self.scope)
        real = attention_mask.bool()
        rows = [tuple(input_ids[b][real[b]].tolist()) for b in range(input_ids.shape[0])]
        state_keys = [("state", context, ids) for ids in rows]
        states = [self.store.get(key) for key in state_keys]
        # the per-layer vectors kept per text: this head's, or (for any other head) those the default multi-layer
        # head of this attention mode reads, made while the prefix runs anyway, so that designs 3 and 5 find them
        # after designs 1-2 and 4 (the same function of the same states: exact)
        summary = getattr(pooler, "layer_summary", None) if frozen else default_layer_summary(attention_mode(base))
        kept = frozen if multilayer else [i for i in range(1, n) if i <= k]
        pools = [tuple(pool_mask[b][real[b]].tolist()) for b in range(len(rows))] if kept else []
        vector_keys = [("vectors", context, ids, pool, summary, tuple(kept)) for ids, pool in zip(rows, pools)]
        vectors: list[Tensor | None] = [self.store.get(key) for key in vector_keys] if frozen else []
        missing = [b for b in range(len(rows)) if states[b] is None or (frozen and vectors[b] is None)]
        with torch.no_grad():
            if missing:
                pick = torch.tensor(missing, device=input_ids.device)
                state, hidden = self._run_prefix(base, k, input_ids[pick], attention_mask[pick], position_ids[pick],
                                                 kept)
                if kept:
                    with torch.autocast(input_ids.device.type, enabled=False):
                        summarize = pooler.summarize if frozen else (lambda h, m: summarize_layer(h, m, summary))
                        made = torch.stack([summarize(hidden[i], pool_mask[pick]) for i in kept], dim=1)
                for j, b in enumerate(missing):
                    states[b] = state[j][real[b]]
                    self.store.put(state_keys[b], states[b])
                    if kept:
                        self.store.put(vector_keys[b], made[j])
                        if frozen:
                            vectors[b] = made[j]
            width = states[0].shape[-1]
            entering = torch.zeros((*input_ids.shape, width), dtype=states[0].dtype, device=input_ids.device)
            entering[real] = torch.cat([s.to(input_ids.device) for s in states])
        live = [i for i in wanted if i not in frozen]
        hidden = self._run_suffix(base, k, entering, attention_mask, position_ids, live)
        if plan.context not in self._checked:
            self._cross_check(model, plan, input_ids, attention_mask, position_ids, hidden[n])
            if self.last_reason is not None:
                return None
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            if not multilayer:
                return pooler((hidden[n],), pool_mask).float()
            by_index = {i: pooler.summarize(hidden[i], pool_mask) for i in live}
            cached = torch.stack([v.to(input_ids.device) for v in vectors], dim=0) if frozen else None  # (B, F, H)
            columns = [cached[:, frozen.index(i)] if i in frozen else by_index[i] for i in wanted]
            return pooler.combine(torch.stack(columns, dim=1)).float()

    def _cross_check(self, model: nn.Module, plan: PrefixPlan, input_ids: Tensor, attention_mask: Tensor,
                     position_ids: Tensor, last: Tensor) -> None:
        """Once per frozen prefix: the suffix's final states must equal a full pass's, or the cache goes off."""
        with torch.no_grad():
            full = base_model(model.backbone)(input_ids=input_ids, attention_mask=attention_mask,
                                              position_ids=position_ids, use_cache=False).last_hidden_state
        real = attention_mask.bool()
        a, b = last.detach()[real].float(), full[real].float()
        error = float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))
        tolerance = _CHECK_TOLERANCE.get(last.dtype, 1e-4)
        if error > tolerance:
            self._plan = PrefixPlan(plan.first_adapted, plan.num_layers, b"",
                                    f"the layer-by-layer pass differs from a full pass by {error:.2e} (relative, "
                                    f"over {tolerance:g}); this transformers version is not run layer by layer")
            self._say(f"prefix cache off: {self._plan.reason}")
            self.last_reason = self._plan.reason
        else:
            self._checked.add(plan.context)
