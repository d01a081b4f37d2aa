"""The models and steps being compared: poolattn, sentence-transformers, and a bare backbone, built alike.

Both libraries get the same backbone weights in the same dtype with fp32 LoRA (r 16, alpha 32, dropout 0 on the
seven projections q,k,v,o,gate,up,down) and the same attention implementation. The dtype is the backbone's
`train_dtype` for training and `encode_dtype` for encoding: on CPU what `dtype: auto` picks on this machine unless
`--dtype` names one, bfloat16 on GPU. A training step runs under `torch.autocast(bfloat16)` exactly when the weights
are bfloat16, as `poolattn train` does (bf16 weights without autocast push the LoRA products to fp32, the slowest
setup). Encoding runs as each library does it by default, without autocast, on backbones without LoRA.

A backbone is a checkpoint folder (the real SmolLM2-135M on CPU) or a config built with random weights in memory
(the Mistral-7B shape in GPU mode: no download, nothing written to disk).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from poolattn.config import DEFAULT_LORA_TARGETS, Config, merge
from poolattn.designs import get_design
from poolattn.losses import InfoNCELoss
from poolattn.training.step import ContrastiveStep
from poolattn.model import Embedder

LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
BF16 = torch.bfloat16
# sentence-transformers renders text through a tokenizer's chat template when it has one (SmolLM2 does);
# pinning the plain text modality keeps its tokens equal to poolattn's.
ST_TEXT_MODALITY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}


@dataclass
class Backbone:
    """Where the weights come from, which device, and which attention kernel each phase uses.

    `folder`: a checkpoint with weights and tokenizer. Otherwise `config` is built with random weights (seeded) and
    `tokenizer_dir` holds the tokenizer. Training uses `train_attn` ("eager" on CPU: sdpa's CPU backward was ~33 ms
    per layer, FIELD-NOTES), encoding `encode_attn`.
    """

    label: str
    device: torch.device
    folder: str | None = None
    config: Any = None
    tokenizer_dir: str | None = None
    train_attn: str = "eager"
    encode_attn: str = "sdpa"
    train_dtype: str = "bfloat16"
    encode_dtype: str = "bfloat16"
    seed: int = 0
    _stub: Any = field(default=None, repr=False)

    @property
    def tokenizer_location(self) -> str:
        return self.folder or self.tokenizer_dir  # type: ignore[return-value]

    def random_module(self, attn: str) -> nn.Module:
        """The transformer body of `config`, random weights (seeded), bf16, on the device."""
        from transformers import AutoModel

        with torch.random.fork_rng(devices=[]), torch.device(self.device):
            torch.manual_seed(self.seed)
            # from_config writes dtype and attention kernel into the config it gets: give it a copy
            model = AutoModel.from_config(copy.deepcopy(self.config), dtype=BF16, attn_implementation=attn)
        return model.eval()

    def stub_folder(self) -> str:
        """A 1-layer, narrow checkpoint of the same model type plus the tokenizer: what sentence-transformers'
        `Transformer` needs to start before its body is swapped for the in-memory one."""
        if self._stub is None:
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            self._stub = tempfile.TemporaryDirectory(prefix="poolattn-bench-stub-")
            small = AutoConfig.for_model(
                self.config.model_type, vocab_size=self.config.vocab_size, hidden_size=32, intermediate_size=64,
                num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=self.config.max_position_embeddings,
            )
            AutoModel.from_config(small).save_pretrained(self._stub.name)
            AutoTokenizer.from_pretrained(self.tokenizer_dir).save_pretrained(self._stub.name)
        return self._stub.name


def autocast(device: torch.device, module: nn.Module):
    """bfloat16 autocast exactly when `module` holds bfloat16 weights (its fp32 LoRA factors apart)."""
    low = any(p.dtype == BF16 for p in module.parameters())
    return torch.autocast(device_type=device.type, dtype=BF16, enabled=low)


def lora_targets() -> list[str]:
    return list(DEFAULT_LORA_TARGETS)


# --------------------------------------------------------------------------------------------- poolattn


def build_embedder(backbone: Backbone, design: int, *, max_length: int, attn: str, dtype: str,
                   lora: bool = True) -> Embedder:
    """poolattn's design `design` on `backbone` with `dtype` weights; through `Embedder.from_design` for a folder.

    Its frozen-prefix cache is off (`prefix_cache: off`): the benchmarks time one pass's work, and with the cache a
    repeated encode of the same texts would read every frozen layer's output from memory (without LoRA, all of
    them) instead of computing it. benchmarks/prefix_cache.py measures what the cache saves.
    """
    lora_section = {**LORA, "enabled": lora}
    if backbone.folder is not None:
        return Embedder.from_design(
            design, backbone.folder, device=backbone.device, max_length=max_length, dtype=dtype,
            attn_implementation=attn, lora=lora_section, prefix_cache="off",
        )
    # Random weights: the same assembly as Embedder.from_config, around a module built in memory.
    from poolattn.backbone.attention import set_attention
    from poolattn.backbone.load import add_lora, load_tokenizer
    from poolattn.pooling import BackboneDims, build_pooler

    overrides = {"model": {"backbone": backbone.tokenizer_dir, "max_length": max_length, "dtype": "bfloat16",
                           "attn_implementation": attn, "lora": lora_section, "prefix_cache": "off"}}
    config = merge(merge(Config(), get_design(design).overrides()), overrides).model
    module = backbone.random_module(attn)
    set_attention(module, config.attention)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        module = add_lora(module, config.lora, config.lora_layers) if lora else module.requires_grad_(False)
        dims = BackboneDims(module.config.hidden_size, module.config.num_hidden_layers,
                            module.config.num_attention_heads, config.attention)
        pooler = build_pooler(config.pooling, dims)
    tokenizer = load_tokenizer(backbone.tokenizer_dir)
    return Embedder(module, tokenizer, pooler.to(device=backbone.device, dtype=torch.float32), config)


def poolattn_step(model: Embedder, *, chunk: int, grad_cache: bool, scale: float) -> ContrastiveStep:
    """The library's per-step work: length-sorted chunks, InfoNCE over the whole batch, optional GradCache."""
    return ContrastiveStep(InfoNCELoss(scale), chunk_size=chunk, grad_cache=grad_cache,
                           collate=model.text_tokenizer.collate)


def poolattn_train_step(model: Embedder, step: ContrastiveStep, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """One optimizer step: all forward passes, the one backward, AdamW."""
    with autocast(model.device, model.backbone):
        result = step(model, batch)
        result.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------------ sentence-transformers


def build_st(backbone: Backbone, *, max_length: int, attn: str, dtype: str, lora: bool = True):
    """sentence-transformers' Transformer + Pooling(lasttoken) on the same weights, LoRA applied through peft."""
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    kwargs = dict(max_seq_length=max_length, modality_config=ST_TEXT_MODALITY, module_output_name="token_embeddings")
    if backbone.folder is not None:
        model_kwargs = {"dtype": getattr(torch, dtype), "attn_implementation": attn}
        transformer = Transformer(backbone.folder, model_kwargs=model_kwargs, **kwargs)
    else:
        transformer = Transformer(backbone.stub_folder(), **kwargs)
        transformer.model = backbone.random_module(attn)
    if transformer.tokenizer.pad_token is None:  # as poolattn does: masks, not ids, mark padding
        transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    if lora:
        # transformers' add_adapter (what SentenceTransformer.add_adapter calls) wants peft >= 0.22; get_peft_model
        # injects the same LoraLayer modules, exactly as poolattn does.
        config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                            target_modules=lora_targets(), bias="none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            transformer.model = get_peft_model(transformer.model, config)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling], device=str(backbone.device))


def st_features(model, columns: Sequence[Sequence[str]], device: torch.device) -> list[dict[str, Any]]:
    """Tokenised, padded columns on the device: what SentenceTransformerTrainer's collator hands the loss."""
    out = []
    for texts in columns:
        features = model.preprocess(list(texts))
        out.append({k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in features.items()})
    return out


def st_train_step(loss: nn.Module, optimizer: torch.optim.Optimizer, features: list[dict[str, Any]],
                  device: torch.device) -> None:
    """One optimizer step of CachedMultipleNegativesRankingLoss: its second pass runs inside `backward()`, so the
    backward is inside autocast too (as on poolattn's side, where both passes run inside the step)."""
    with autocast(device, loss.model):
        value = loss([dict(f) for f in features], None)
        value.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------------------------- bare


def bare_train_step(backbone: nn.Module, optimizer: torch.optim.Optimizer, features: dict[str, Tensor]) -> None:
    """The floor: backbone forward, the last real token's state, a trivial loss, backward, AdamW."""
    device = features["input_ids"].device
    with autocast(device, backbone):
        out = backbone(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                       position_ids=features["position_ids"], use_cache=False)
        hidden = out.last_hidden_state  # (B, T, H)
        last = features["attention_mask"].sum(dim=1) - 1  # right padding: the last real token
        pooled = hidden[torch.arange(hidden.shape[0], device=device), last]  # (B, H)
        pooled.float().pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def adamw(parameters, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in parameters if p.requires_grad], lr=lr)


def trainable_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
