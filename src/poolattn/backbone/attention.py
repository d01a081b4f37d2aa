"""Causal or bidirectional attention for a decoder LLM: the only file that reaches into HF internals.

Why a switch and not a copy of the modeling code: per-architecture rewrites (as LLM2Vec ships) break with each
transformers release. Since transformers 5.2, mask creation reads `config.is_causal`: when it is False, Llama,
Mistral and Qwen2 build a bidirectional padding mask and sdpa's causal flag follows. Gemma3 has its own switch,
`config.use_bidirectional_attention`. The attention modules keep an `is_causal` attribute that some code paths
(sdpa without a mask, flash attention) read, so it is set as well. Setting only the module flag would be wrong:
with padding, eager attention stays causal.

Families are listed only once the perturbation test in tests/backbone/test_attention.py passes for them (change
the last real token: under bidirectional attention the first token's state must change, under causal it must
not; sdpa and eager; left and right padding). Any other family is refused rather than silently left causal.
"""

from __future__ import annotations

from torch import nn

from poolattn.errors import UsageError

# model_type -> the config attribute that turns on bidirectional attention, and its value for that mode
_BIDIRECTIONAL_SWITCH: dict[str, tuple[str, bool]] = {
    "llama": ("is_causal", False),
    "mistral": ("is_causal", False),
    "qwen2": ("is_causal", False),
    "qwen3": ("is_causal", False),
    "gemma3_text": ("use_bidirectional_attention", True),
}
SUPPORTED_BIDIRECTIONAL = tuple(sorted(_BIDIRECTIONAL_SWITCH))


class UnsupportedAttentionError(UsageError, ValueError):
    """Bidirectional attention was asked for on a model family where it is not verified."""


def _model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", type(model).__name__)


def set_attention(model: nn.Module, mode: str) -> nn.Module:
    """Put `model` (a HF base or causal-LM model, before LoRA wrapping) in `mode` and return it.

    Raises:
        UnsupportedAttentionError: `mode` is "bidirectional" and the model family is not verified.
        ValueError: `mode` is neither "causal" nor "bidirectional".
    """
    if mode not in ("causal", "bidirectional"):
        raise ValueError(f"attention mode {mode!r} is not allowed; choose 'causal' or 'bidirectional'")
    model_type = _model_type(model)
    causal = mode == "causal"
    if model_type not in _BIDIRECTIONAL_SWITCH:
        if causal:
            return model  # the model's own default
        raise UnsupportedAttentionError(
            f"bidirectional attention is not verified for model_type {model_type!r}; supported: "
            f"{list(SUPPORTED_BIDIRECTIONAL)}. Use attention='causal' or add the family to "
            "poolattn/backbone/attention.py together with its perturbation test."
        )
    attribute, bidirectional_value = _BIDIRECTIONAL_SWITCH[model_type]
    setattr(model.config, attribute, (not bidirectional_value) if causal else bidirectional_value)
    for module in model.modules():
        if hasattr(module, "is_causal") and module is not model:
            module.is_causal = causal
    return model


def attention_mode(model: nn.Module) -> str:
    """The mode a model is in, read back from its config."""
    model_type = _model_type(model)
    if model_type not in _BIDIRECTIONAL_SWITCH:
        return "causal"
    attribute, bidirectional_value = _BIDIRECTIONAL_SWITCH[model_type]
    value = getattr(model.config, attribute, not bidirectional_value)
    return "bidirectional" if value == bidirectional_value else "causal"
