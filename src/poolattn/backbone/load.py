"""Load a decoder backbone and its tokenizer, put it in an attention mode, and wrap it with LoRA (peft)."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from poolattn.backbone import offline
from poolattn.backbone.attention import set_attention
from poolattn.backbone.dtype import auto_choice
from poolattn.config import LoraConfig, ModelConfig
from poolattn.errors import InputError, InputNotFoundError

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(
    name: str, device: torch.device | str | None = None, *, location: str | None = None, purpose: str = "encode",
    trust_remote_code: bool = False,
) -> torch.dtype:
    """A dtype name as a torch dtype. 'auto' is bfloat16 on CUDA (where supported); on CPU it is float32 or
    bfloat16, whichever this machine runs faster at the shapes of the backbone at `location`, for `purpose`
    ('encode' or 'train'; see `backbone/dtype.py`), and float32 when no backbone is given."""
    if name == "auto":
        device = torch.device(device) if device is not None else default_device()
        if location is None and device.type == "cpu":
            return torch.float32
        with backbone_errors(location or ""):  # auto reads the backbone's config for its layer shapes
            choice = auto_choice(location or "", device, purpose, trust_remote_code=trust_remote_code)
        return _DTYPES[choice.dtype]
    return _DTYPES[name]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(location: str, *, trust_remote_code: bool = False):
    """The backbone's tokenizer, with a pad token (the EOS token when it has none: masks, not ids, mark padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    if tokenizer.eos_token_id is None:
        raise InputError(
            f"the tokenizer of {location!r} has no EOS token; poolattn appends EOS to every text for pooling. "
            "Set tokenizer.eos_token in the checkpoint's tokenizer_config.json."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(
    location: str,
    *,
    dtype: torch.dtype,
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    safetensors_only: bool = False,
) -> nn.Module:
    """The transformer body without its LM head (`AutoModel`): we pool hidden states, never predict tokens."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the per-tensor "Loading weights" bar is noise for sub-second loads
    with backbone_errors(location):
        return AutoModel.from_pretrained(
            location, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code,
            **({"use_safetensors": True} if safetensors_only else {}),
        )


@contextlib.contextmanager
def backbone_errors(location: str) -> Iterator[None]:
    """A backbone (or its config) that transformers cannot find or read becomes one line naming `location`."""
    try:
        yield
    except OSError as exc:
        known = sorted(offline.OFFLINE_MODELS)
        raise InputNotFoundError(
            f"could not load backbone {location!r}: {' '.join(str(exc).split())} Give a local folder, a Hugging "
            f"Face hub id (needs network), or one of the offline models {known} (`poolattn models list`)."
        ) from exc


def lora_layer_indices(layers: list[int] | None, num_layers: int) -> list[int] | None:
    """Normalise LoRA layer numbers (negatives count from the end) to sorted 0-based indices."""
    if layers is None:
        return None
    out = sorted({i + num_layers if i < 0 else i for i in layers})
    bad = [i for i in out if not 0 <= i < num_layers]
    if bad:
        raise InputError(f"lora.layers={layers} names layers outside 0..{num_layers - 1}")
    return out


def lora_targets(lora: LoraConfig, num_layers: int, layers: list[int] | None) -> list[str] | str:
    """peft's `target_modules`: the module names, or restricted to `layers` one regex over full module paths.

    peft's own `layers_to_transform` expects a prefix before the layer list (`model.layers.3.`) and finds no
    module in a bare decoder (`layers.3.`), so the layer restriction is written into the pattern instead.
    """
    indices = lora_layer_indices(layers, num_layers)
    if indices is None:
        return list(lora.target_modules)
    layers = "|".join(map(str, indices))
    names = "|".join(re.escape(name) for name in lora.target_modules)
    return rf"(.*\.)?layers\.({layers})\.(.*\.)?({names})"


def add_lora(model: nn.Module, lora: LoraConfig, layers: list[int] | None) -> nn.Module:
    """Wrap `model` with fresh LoRA adapters (peft) on `layers` (None: every layer, see `ModelConfig.lora_layers`);
    the base weights are frozen."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_targets(lora, model.config.num_hidden_layers, layers),
        bias="none",
    )
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers API that transformers 5 deprecated; nothing for users to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, peft_config)


def load_lora(model: nn.Module, adapter_dir: Path, *, trainable: bool = False) -> nn.Module:
    """Wrap `model` with adapters saved by peft (safetensors)."""
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def load_backbone(
    config: ModelConfig, *, device: torch.device | str | None = None, location: str | None = None,
    safetensors_only: bool = False, purpose: str = "encode",
):
    """The backbone of `config` on `device`: weights in the configured dtype, attention mode set (no LoRA yet).

    `location` overrides where the weights come from (a merged checkpoint inside a saved model folder); by
    default `config.backbone` is resolved (offline short names are fetched into the cache on first use).
    `purpose` ('encode' or 'train') is what `dtype: auto` is measured for.
    """
    device = torch.device(device) if device is not None else default_device()
    where = location or offline.resolve(config.backbone)
    dtype = resolve_dtype(config.dtype, device, location=where, purpose=purpose,
                          trust_remote_code=config.trust_remote_code)
    model = load_base_model(
        where, dtype=dtype, attn_implementation=config.attn_implementation, trust_remote_code=config.trust_remote_code,
        safetensors_only=safetensors_only,
    )
    set_attention(model, config.attention)
    return model.to(device)
