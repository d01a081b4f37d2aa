"""GPU mode: a random-init backbone of Mistral-7B's shape, built in memory, and model-FLOPs utilisation.

No download and nothing on disk: the weights are random (speed does not depend on their values), made in bf16
directly on the device. The tokenizer is SmolLM2's when it is in the local cache (its 49,152 ids need a vocabulary
that large, so the embedding table grows from 32,000 rows; embeddings do no matrix-multiply FLOPs), else a
character-level tokenizer built here, so the mode also runs on a machine with no network at all.

MFU counts the FLOPs the model needs, not the ones a method spends again. With LoRA the base weights are frozen, so
the backward pass computes only input gradients through them (2 FLOPs per weight per token, not 4):

    FLOPs per trained token = 2*N (forward) + 2*N (backward, input gradients) + 6*N_lora (LoRA: forward + both
    backward products)

N: frozen matrix weights of the transformer layers (embeddings excluded); N_lora: LoRA weights. Attention-score
FLOPs (4 * layers * hidden * context per token, under 2% at these lengths) and the pooling head are left out, so
the figure is slightly conservative. GradCache's first, gradient-free pass (another 2*N per token) is extra work
the method chooses to spend: it is in `hfu_*` (hardware FLOPs utilisation) and not in `mfu_*`.
"""

from __future__ import annotations

import copy
import tempfile
from typing import Any

import torch
from torch import nn

from benchmarks.common import log
from benchmarks.contenders import Backbone

MISTRAL_7B = dict(
    hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    intermediate_size=14336, vocab_size=32000, max_position_embeddings=32768, rms_norm_eps=1e-5,
    rope_theta=1e6, sliding_window=None, tie_word_embeddings=False,
)
# A shape small enough to run the whole GPU code path on a laptop CPU (--gpu-dry-run-on-cpu).
DRY_RUN_SHAPE = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
    vocab_size=32000, max_position_embeddings=4096, sliding_window=None, tie_word_embeddings=False,
)
# Dense bf16 tensor-core peaks (no sparsity), from the vendors' data sheets; name fragment -> TFLOP/s.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
FLOP_FORMULA = "2*N fwd + 2*N bwd (input grads only; frozen base) + 6*N_lora per real token; N excludes embeddings"
_CHAR_VOCAB = ["<unk>", "<eos>", "<bos>"] + [chr(c) for c in range(32, 127)]


def char_tokenizer_dir() -> str:
    """A character-level tokenizer saved to a temporary folder (offline fallback for random-init backbones)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(_CHAR_VOCAB)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>",
                                        bos_token="<bos>", pad_token="<eos>")
    folder = tempfile.mkdtemp(prefix="poolattn-bench-chartok-")
    tokenizer.save_pretrained(folder)
    return folder


def tokenizer_dir(explicit: str | None = None) -> tuple[str, str]:
    """(folder, description): `explicit`, else the cached SmolLM2 tokenizer, else the character-level fallback."""
    from poolattn.backbone import offline

    if explicit:
        return explicit, explicit
    if offline.is_fetched("smollm2-135m"):
        return str(offline.model_dir("smollm2-135m")), "smollm2-135m (cached)"
    return char_tokenizer_dir(), "character-level (smollm2-135m not in the cache; tokens are characters)"


def mistral_config(shape: dict[str, Any], tokenizer_location: str, layers: int | None = None):
    from transformers import AutoTokenizer, MistralConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_location)
    values = dict(shape)
    values["vocab_size"] = max(values["vocab_size"], len(tokenizer))
    if layers is not None:
        values["num_hidden_layers"] = layers
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return MistralConfig(**values, eos_token_id=eos, pad_token_id=pad, bos_token_id=tokenizer.bos_token_id)


def layer_bytes(config) -> int:
    """bf16 bytes of one decoder layer's matrices (norms are negligible)."""
    h, i = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    return 2 * (2 * h * h + 2 * h * kv + 3 * h * i)


def layers_that_fit(config, device: torch.device, *, copies: int, reserve_fraction: float = 0.45) -> int:
    """The largest layer count (up to the config's) whose `copies` weight copies leave `reserve_fraction` of the
    free memory for activations; printed, since a smaller model changes every absolute number."""
    free, _ = torch.cuda.mem_get_info(device)
    embed = 2 * config.vocab_size * config.hidden_size
    budget = free * (1 - reserve_fraction) / copies - embed
    fit = int(budget // layer_bytes(config))
    return max(1, min(config.num_hidden_layers, fit))


def gpu_backbone(device: torch.device, *, dry_run: bool, layers: int | None, tokenizer: str | None) -> Backbone:
    """The random-init backbone for --gpu (Mistral-7B shape) or --gpu-dry-run-on-cpu (a tiny Mistral)."""
    location, description = tokenizer_dir(tokenizer)
    shape = DRY_RUN_SHAPE if dry_run else MISTRAL_7B
    config = mistral_config(shape, location, layers)
    if device.type == "cuda" and layers is None:
        fit = layers_that_fit(config, device, copies=2)
        if fit < config.num_hidden_layers:
            log(f"only {fit} of {config.num_hidden_layers} layers fit twice in GPU memory with room to train")
            config.num_hidden_layers = fit
    label = f"random-init Mistral shape (hidden {config.hidden_size}, {config.num_hidden_layers} layers, " \
            f"{config.num_attention_heads} heads, {config.num_key_value_heads} KV heads, intermediate " \
            f"{config.intermediate_size}, vocab {config.vocab_size}); tokenizer: {description}"
    return Backbone(label=label, device=device, config=copy.deepcopy(config), tokenizer_dir=location,
                    train_attn="sdpa", encode_attn="sdpa")


def peak_tflops(device: torch.device, override: float | None, *, dry_run: bool) -> tuple[float | None, str]:
    """(peak dense bf16 TFLOP/s, where the number comes from)."""
    if override:
        return override, "--peak-tflops"
    if dry_run:
        return PEAK_BF16_TFLOPS["H100"], "dry run on CPU: H100 SXM value assumed, MFU meaningless"
    name = torch.cuda.get_device_name(device)
    for fragment, tflops in PEAK_BF16_TFLOPS.items():
        if fragment in name:
            return tflops, f"{name}: dense bf16 data-sheet peak for {fragment}"
    return None, f"{name}: unknown peak; pass --peak-tflops"


def flop_counts(backbone: nn.Module) -> tuple[int, int]:
    """(N, N_lora): frozen matrix weights of the layers (embeddings excluded) and trainable LoRA weights."""
    frozen = lora = 0
    for name, param in backbone.named_parameters():
        if param.requires_grad:
            lora += param.numel()
        elif param.ndim == 2 and "embed" not in name:
            frozen += param.numel()
    return frozen, lora


def utilisation(tokens_per_s: float, frozen: int, lora: int, peak: float | None, *,
                grad_cache: bool) -> tuple[float, float]:
    """(MFU, HFU) as fractions; NaN when the peak is unknown."""
    if not peak:
        return float("nan"), float("nan")
    model_flops = 4 * frozen + 6 * lora
    hardware_flops = model_flops + (2 * frozen + 2 * lora if grad_cache else 0)
    return tokens_per_s * model_flops / (peak * 1e12), tokens_per_s * hardware_flops / (peak * 1e12)
