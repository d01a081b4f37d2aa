"""`Embedder`: decoder backbone -> pooling head -> unit-norm embedding, with encode / save / load.

Read top to bottom: texts are formatted and tokenised (`features.py`), the backbone (LoRA-wrapped, causal or
bidirectional) gives hidden states, the pooler (float32) makes one vector per text, and it is L2-normalised.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from poolattn.backbone.load import add_lora, default_device, load_backbone, load_lora, load_tokenizer
from poolattn.backbone.offline import resolve as resolve_backbone
from poolattn.backbone.passes import choose_pass_tokens
from poolattn.backbone.prefix import PrefixCache, base_model, layer_states
from poolattn.config import Config, ModelConfig, merge
from poolattn.designs import get_design
from poolattn.errors import InputError, InputNotFoundError
from poolattn.features import TextTokenizer, check_texts
from poolattn.model.card import write_model_card
from poolattn.model.folder import (ADAPTER_DIR, CONFIG_FILE, FORMAT_VERSION, MERGED_DIR, POOLER_FILE,
                                   backbone_location, read_saved_model, refuse_code_hooks)
from poolattn.pooling import BackboneDims, Pooler, build_pooler, pooler_class
from poolattn.version import __version__

logger = logging.getLogger(__name__)

# What `encode_query` uses when no instruction is given (the E5 retrieval instruction).
DEFAULT_QUERY_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
CONVERT_TO = ("numpy", "torch")


def _backbone_dims(model: nn.Module, attention: str) -> BackboneDims:
    config = model.config
    return BackboneDims(
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        attention=attention,
    )


def _merged_state_dict(peft_model: nn.Module) -> dict[str, Tensor]:
    """The base model's weights with every LoRA delta folded in, leaving the live model untouched.

    peft's merge_adapter/unmerge_adapter would round-trip the weights through the backbone dtype (lossy in
    bfloat16); `merge_and_unload` would destroy the adapters of a model still in use.
    """
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    deltas = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            deltas[f"{name}.weight"] = sum(module.get_delta_weight(a) for a in module.active_adapters)
    state = {}
    for key, value in base.state_dict().items():
        if "lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        if key in deltas:
            value = (value.float() + deltas[key].float()).to(value.dtype)
        state[key] = value.detach().clone()
    return state


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices, longest first, cut into batches of at most `batch_size` items and `max_tokens` padded positions.

    A batch pads to its first (longest) item, so its padded size is count x that length; an item longer than
    `max_tokens` goes alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        if (batch is None or len(batch) == batch_size
                or (max_tokens is not None and (len(batch) + 1) * lengths[batch[0]] > max_tokens)):
            batches.append([index])
        else:
            batch.append(index)
    return batches


class Embedder(nn.Module):
    """A text embedding model: backbone (+ LoRA) -> pooler -> L2 normalisation.

    Build one with `from_design`, `from_config` or `load`; use `encode` for numpy embeddings and `forward` on
    tokenised features (from `tokenize`) for training.
    """

    def __init__(self, backbone: nn.Module, tokenizer: Any, pooler: Pooler, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooler = pooler
        self.config = config
        self.tokenizer = tokenizer
        self.text_tokenizer = TextTokenizer(
            tokenizer,
            max_length=config.max_length,
            padding_side=config.padding_side,
            template=config.instruction_template,
            exclude_instruction=config.exclude_instruction,
        )
        self._warned_truncation = False
        self._lora_merged = False  # set by merge_lora: the backbone's weights are no longer config.backbone's
        # frozen-prefix cache (backbone/prefix.py); it checks on every batch whether it is exact for this model
        self.prefix_cache = PrefixCache() if config.prefix_cache == "auto" else None
        # On a CPU, at most this many padded token positions per encoding pass (besides batch_size): measured for
        # this machine, backbone shape, dtype, kernel and attention mode on the first CPU encode
        # (backbone/passes.py). Set it to override; GPUs prefer large passes and take none.
        self.cpu_pass_tokens: int | None = None

    # ------------------------------------------------------------------------------------- construction
    @classmethod
    def from_config(
        cls, config: ModelConfig, *, device: torch.device | str | None = None, purpose: str = "encode"
    ) -> Embedder:
        """A fresh model: pretrained backbone, new LoRA adapters (if enabled) and a new head, seeded by config.seed.

        `purpose` ('encode' or 'train') is what `dtype: auto` picks the faster dtype for on this machine.
        """
        device = torch.device(device) if device is not None else default_device()
        backbone = load_backbone(config, device=device, purpose=purpose)
        tokenizer = load_tokenizer(resolve_backbone(config.backbone), trust_remote_code=config.trust_remote_code)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.lora.enabled:
                backbone = add_lora(backbone, config.lora, config.lora_layers)
            else:
                backbone.requires_grad_(False)
            pooler = build_pooler(config.pooling, _backbone_dims(backbone, config.attention))
        return cls(backbone, tokenizer, pooler.to(device=device, dtype=torch.float32), config)

    @classmethod
    def from_design(
        cls,
        design: int | str,
        backbone: str = "smollm2-135m",
        *,
        device: torch.device | str | None = None,
        **model_overrides: Any,
    ) -> Embedder:
        """Design 1-5 (or a name such as "mean-bidirectional") on `backbone`; keyword arguments set ModelConfig fields.

        Example: `Embedder.from_design(5, "smollm2-135m", max_length=128, lora={"r": 8})`.
        """
        overrides = {"model": {"backbone": backbone, **model_overrides}}
        config = merge(merge(Config(), get_design(design).overrides()), overrides).model
        return cls.from_config(config, device=device)

    # ----------------------------------------------------------------------------------------- forward
    @property
    def device(self) -> torch.device:
        return next(self.pooler.parameters(), next(self.backbone.parameters())).device

    @property
    def embedding_dim(self) -> int:
        return self.pooler.output_dim

    def get_sentence_embedding_dimension(self) -> int:
        """`embedding_dim` under sentence-transformers' name."""
        return self.embedding_dim

    @property
    def max_length(self) -> int:
        """Tokens per text at inference, EOS included; the saved training length (config.max_length) by default.

        Settable up to the backbone's context (`max_position_embeddings`); the saved model keeps its training
        length.
        """
        return self.text_tokenizer.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.text_tokenizer.max_length = self._checked_max_length(value)

    def _checked_max_length(self, value: int) -> int:
        context = getattr(self.backbone.config, "max_position_embeddings", None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise InputError(f"max_length={value!r} must be an integer >= 2 (room for text and the EOS token)")
        if context is not None and value > context:
            raise InputError(
                f"max_length={value} is longer than the backbone's context of {context} tokens; choose <= {context}"
            )
        return value

    def tokenize(self, texts: Sequence[str], instructions: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        """Padded features (input_ids, attention_mask, pool_mask, position_ids) for `forward`."""
        return self.text_tokenizer(texts, instructions)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        pool_mask: Tensor,
        position_ids: Tensor | None = None,
        *,
        normalize: bool = True,
    ) -> Tensor:
        """(B, D) float32 embeddings of a tokenised batch: unit rows, or the raw pooled vectors (`normalize=False`)."""
        pooled = None
        if self.prefix_cache is not None:  # --- frozen-prefix cache hook: None where it is off (it logs why)
            pooled = self.prefix_cache.pooled(self, input_ids, attention_mask, pool_mask, position_ids)
        if pooled is None:
            pooled = self._pooled_full(input_ids, attention_mask, pool_mask, position_ids)
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            return F.normalize(pooled, dim=-1) if normalize else pooled

    def _pooled_full(
        self, input_ids: Tensor, attention_mask: Tensor, pool_mask: Tensor, position_ids: Tensor | None
    ) -> Tensor:
        """(B, D) float32 pooled vectors from a pass through every layer."""
        all_layers = self.pooler.uses_all_layers
        if all_layers and hasattr(self.pooler, "summarize") and not torch.is_grad_enabled():
            layers = getattr(base_model(self.backbone), "layers", None)
            if layers is not None:
                return self._pooled_by_layer(list(layers), input_ids, attention_mask, pool_mask, position_ids)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=all_layers,
            use_cache=False,
        )
        hidden = tuple(out.hidden_states) if all_layers else (out.last_hidden_state,)
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            return self.pooler(hidden, pool_mask).float()

    def _pooled_by_layer(self, layers: list[nn.Module], input_ids: Tensor, attention_mask: Tensor, pool_mask: Tensor,
                         position_ids: Tensor | None) -> Tensor:
        """A multi-layer head's pooled vectors, each layer summarised as it runs.

        The same summaries of the same states as from `output_hidden_states=True`, bit for bit, but without
        holding every layer's (B, T, H) states until the pass ends (each goes once the next layer has read it): for
        SmolLM2-135M (31 hidden states of width 576) at 2,048 positions in bfloat16 that is 71 MB per pass, for a
        7B model with 33 of width 4,096 at 16,384 positions 4.3 GB. Only without gradients: training keeps the
        states for backward anyway, and its gradients would sum in another order (float rounding) than they do
        through the pooler's own forward.
        """
        device = input_ids.device.type

        def summarize(states: Tensor) -> Tensor:
            with torch.autocast(device_type=device, enabled=False):
                return self.pooler.summarize(states, pool_mask)

        with layer_states(layers, self.pooler.layers, summarize) as vectors:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=False)
        if len(layers) in self.pooler.layers:
            vectors[len(layers)] = summarize(out.last_hidden_state)  # HF's last hidden state: after the final norm
        with torch.autocast(device_type=device, enabled=False):
            return self.pooler.combine(torch.stack([vectors[i] for i in self.pooler.layers], dim=1)).float()

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """Recompute the backbone's activations in backward (called by the Trainer for --gradient_checkpointing)."""
        base = base_model(self.backbone)
        kwargs = {"gradient_checkpointing_kwargs": kwargs.get("activation_checkpointing_kwargs")
                  or kwargs.get("gradient_checkpointing_kwargs") or {"use_reentrant": False}}
        base.gradient_checkpointing_enable(**kwargs)
        base.enable_input_require_grads()  # with frozen embeddings, checkpointed blocks would see no grad input

    gradient_checkpointing_enable = activation_checkpointing_enable

    def merge_lora(self) -> Embedder:
        """Fold the LoRA adapters into the backbone weights, for inference; returns self.

        peft runs every adapter as a separate float32 side path (input casts, two skinny matrix products, an
        add): 210 of them per forward on SmolLM2, which made bfloat16 encoding 2.5x slower on CPU. Merged, the
        forward costs what the bare backbone costs. Irreversible: merge a model you will not train further.
        """
        if hasattr(self.backbone, "merge_and_unload"):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                self.backbone = self.backbone.merge_and_unload()
            self._lora_merged = True
            self.backbone.requires_grad_(False)
        return self

    # ------------------------------------------------------------------------------------------ encode
    def pass_tokens(self) -> int | None:
        """The padded positions one encoding pass may hold on this device (None: no cap, as on a GPU)."""
        if self.device.type != "cpu":
            return None
        chosen = self.cpu_pass_tokens
        if chosen is None:
            hf_config = self.backbone.config
            dtype = next(self.backbone.parameters()).dtype
            attn = getattr(hf_config, "_attn_implementation", None) or "sdpa"
            chosen = self.cpu_pass_tokens = choose_pass_tokens(hf_config, dtype, attn, self.config.attention).tokens
        elif isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
            raise InputError(f"cpu_pass_tokens={chosen!r} must be a whole number of padded positions >= 1, or None "
                             "to use the size measured on this machine")
        return chosen

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | Sequence[str | None] | None = None,
        batch_size: int = 32,
        show_progress: bool | None = None,
        normalize: bool = True,
        convert_to: str = "numpy",
    ) -> np.ndarray | Tensor:
        """(N, D) float32 unit rows, in input order (a numpy array, or a CPU tensor with `convert_to="torch"`).

        Texts are sorted by length so each batch pads little (on CPU a pass also stops at `pass_tokens()` padded
        positions, a size measured on this machine), then put back in order. An instruction (one for all texts, or
        one per text) uses the E5 form `Instruct: {instruction}\\nQuery: {text}`. An empty string is encoded (EOS
        only); text over max_length is truncated, with one warning saying how many were cut.
        `normalize=False` returns the pooled vectors before L2 normalisation.

        Raises:
            TypeError: an item is None or not a string (the message names its index).
            ValueError: `convert_to` is not "numpy" or "torch", or batch_size < 1.
        """
        if convert_to not in CONVERT_TO:
            raise InputError(f"convert_to={convert_to!r} is not allowed; choose one of {list(CONVERT_TO)}")
        texts = check_texts(texts)
        if isinstance(instruction, str) or instruction is None:
            instructions: list[str | None] = [instruction] * len(texts)
        else:
            instructions = list(instruction)
        if batch_size < 1:
            raise InputError(f"batch_size={batch_size} must be >= 1")
        out = np.zeros((len(texts), self.embedding_dim), dtype=np.float32)
        if not texts:
            return out if convert_to == "numpy" else torch.from_numpy(out)
        items = self.text_tokenizer.tokenize(texts, instructions)
        # A low-precision backbone still carrying LoRA adapters (a model in training): autocast runs the float32
        # adapter side paths in the backbone's dtype instead of casting every activation to float32 and back.
        dtype = next(self.backbone.parameters()).dtype
        use_autocast = dtype in (torch.bfloat16, torch.float16) and hasattr(self.backbone, "peft_config")
        cut = sum(item.truncated for item in items)
        if cut:
            logger.warning(
                "%d of %d texts were longer than max_length=%d tokens and were truncated",
                cut, len(texts), self.max_length,
            )
        batches = length_batches([len(item.ids) for item in items], batch_size, self.pass_tokens())
        if show_progress is None:
            show_progress = len(batches) > 10
        was_training = self.training
        self.eval()
        try:
            for rows in tqdm(batches, desc="encode", unit="batch", disable=not show_progress):
                features = self.text_tokenizer.collate([items[i] for i in rows])
                features = {k: v.to(self.device) for k, v in features.items()}
                with torch.autocast(self.device.type, dtype=dtype, enabled=use_autocast):
                    out[rows] = self(**features, normalize=normalize).cpu().numpy()
        finally:
            self.train(was_training)
        return out if convert_to == "numpy" else torch.from_numpy(out)

    def encode_query(
        self, texts: Sequence[str], *, instruction: str | None = None, **kwargs: Any
    ) -> np.ndarray | Tensor:
        """`encode` with a query instruction (default: the E5 web-search one, `DEFAULT_QUERY_INSTRUCTION`)."""
        return self.encode(texts, instruction=instruction or DEFAULT_QUERY_INSTRUCTION, **kwargs)

    def encode_document(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray | Tensor:
        """`encode` without an instruction: documents are embedded as they are, as in training and evaluation."""
        if "instruction" in kwargs:
            raise TypeError("encode_document takes no instruction; use encode_query or encode(..., instruction=)")
        return self.encode(texts, **kwargs)

    @staticmethod
    def similarity(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """(N, M) cosine similarities between the rows of `a` (N, D) and `b` (M, D); a tensor if `a` is one.

        Raises:
            ValueError: the inputs are not 2-D or their widths differ.
        """
        as_torch = isinstance(a, Tensor)
        left = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a, dtype=torch.float32)
        right = torch.as_tensor(np.asarray(b) if not isinstance(b, Tensor) else b, dtype=torch.float32)
        if left.ndim == 1:
            left = left.unsqueeze(0)
        if right.ndim == 1:
            right = right.unsqueeze(0)
        if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[1]:
            raise InputError(
                f"similarity needs two (N, D) arrays of the same width, got {tuple(left.shape)} and {tuple(right.shape)}"
            )
        scores = F.normalize(left, dim=-1) @ F.normalize(right.to(left.device), dim=-1).T
        return scores if as_torch else scores.cpu().numpy()

    # ------------------------------------------------------------------------------------------ counts
    def parameter_counts(self) -> dict[str, int]:
        """Trainable LoRA parameters, trainable head parameters and frozen backbone parameters, separately."""
        lora = sum(p.numel() for n, p in self.backbone.named_parameters() if p.requires_grad)
        frozen = sum(p.numel() for n, p in self.backbone.named_parameters() if not p.requires_grad)
        head = sum(p.numel() for p in self.pooler.parameters())
        return {"lora": lora, "head": head, "backbone_frozen": frozen}

    # -------------------------------------------------------------------------------------- save / load
    def save(self, path: str | Path, *, merge_lora: bool = False) -> Path:
        """One folder: poolattn.json, adapter/ (peft, safetensors), pooler.safetensors, tokenizer files.

        With `merge_lora`, the LoRA deltas are folded into a plain backbone saved under backbone/ instead of an
        adapter, so the folder loads without peft and without the original backbone.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model_section = dataclasses.asdict(self.config)
        has_lora = hasattr(self.backbone, "peft_config")
        # a backbone whose adapters were merged (every model loaded for inference) can only be saved whole
        merge_lora = merge_lora or self._lora_merged
        if merge_lora:
            base = self.backbone.get_base_model() if has_lora else self.backbone
            state = _merged_state_dict(self.backbone) if has_lora else None
            base.save_pretrained(path / MERGED_DIR, state_dict=state, safe_serialization=True)
            model_section["lora"]["enabled"] = False
        elif has_lora:
            self.backbone.save_pretrained(path / ADAPTER_DIR, safe_serialization=True)
            (path / ADAPTER_DIR / "README.md").unlink(missing_ok=True)  # peft's generic card, written just now
        else:
            model_section["lora"]["enabled"] = False
        pooler_state = {k: v.detach().contiguous().cpu() for k, v in self.pooler.state_dict().items()}
        if pooler_state:
            save_file(pooler_state, str(path / POOLER_FILE))
        self.tokenizer.save_pretrained(path)
        meta = {
            "format_version": FORMAT_VERSION,
            "poolattn_version": __version__,
            "model": model_section,
            "pooler": {"name": self.config.pooling.name, "args": self.pooler.init_args},
            "merged": merge_lora,
            "embedding_dim": self.embedding_dim,
        }
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_model_card(path)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: torch.device | str | None = None,
        dtype: str | torch.dtype | None = "auto",
        trainable: bool = False,
        merge_lora: bool | None = None,
        trust_remote_code: bool = False,
        backbone: str | None = None,
        max_length: int | None = None,
    ) -> Embedder:
        """Rebuild a saved model: same backbone, adapters, head and tokenizer, hence the same embeddings.

        Loading runs no code from the folder and reads no weights outside it (see `model.folder`): a folder that
        asks for `trust_remote_code` is refused unless the caller passes `trust_remote_code=True`, and a backbone
        recorded as a local path is loaded only when the caller names it again as `backbone`.

        `dtype` 'auto' (the default) takes the faster of float32 and bfloat16 on this machine, measured for
        encoding or, with `trainable=True`, for training; None keeps the dtype the model was trained in.

        A model loaded for inference (`trainable=False`) in float32 has its LoRA adapters merged into the weights
        (see `merge_lora`): the same embeddings up to float32 rounding, at the bare backbone's speed. In bfloat16
        or float16 the adapters stay unmerged by default, so the evaluated model is the trained one: a merged
        low-precision weight is round(W + BA), and the rounding drops most of a small LoRA update (bf16 keeps 8
        significant bits). `merge_lora=True` / `False` overrides. `trainable=True` keeps the adapters and makes
        them and the head trainable. `max_length` sets the inference length (see `max_length`); by default it is
        the length the model was trained with.

        Raises:
            FileNotFoundError: `path` is not a folder written by `Embedder.save`.
            ValueError: poolattn.json breaks its schema (unknown key, wrong type, size out of bounds).
            PermissionError: the folder asks for code or a local backbone the caller did not allow.
        """
        path = Path(path)
        saved = read_saved_model(path, trust_remote_code=trust_remote_code)
        refuse_code_hooks(path, trust_remote_code=trust_remote_code)
        location, own = backbone_location(path, saved.config, explicit=backbone)
        config = dataclasses.replace(saved.config, trust_remote_code=trust_remote_code)
        if dtype is not None:
            config = merge(Config(model=config), {"model": {"dtype": dtype}}).model
        device = torch.device(device) if device is not None else default_device()
        adapter = path / ADAPTER_DIR
        if adapter.is_dir() and not (adapter / "adapter_model.safetensors").is_file():
            raise InputNotFoundError(f"{adapter} holds no adapter_model.safetensors; poolattn reads safetensors only")
        backbone = load_backbone(config, device=device, location=location, safetensors_only=own,
                                 purpose="train" if trainable else "encode")
        tokenizer = load_tokenizer(str(path), trust_remote_code=trust_remote_code)
        if (path / ADAPTER_DIR).is_dir():
            backbone = load_lora(backbone, path / ADAPTER_DIR, trainable=trainable)
        else:
            backbone.requires_grad_(False)
        pooler = pooler_class(saved.pooler_name)(**saved.pooler_args)
        if (path / POOLER_FILE).is_file():
            pooler.load_state_dict(load_file(str(path / POOLER_FILE)))
        pooler.requires_grad_(trainable)
        model = cls(backbone, tokenizer, pooler.to(device=device, dtype=torch.float32), config)
        exact = next(model.backbone.parameters()).dtype == torch.float32
        if merge_lora if merge_lora is not None else (not trainable and exact):
            model.merge_lora()
        if max_length is not None:
            model.max_length = max_length
        return model


def resolve_model(
    spec: str | Path,
    *,
    backbone: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    max_length: int | None = None,
    trust_remote_code: bool = False,
) -> Embedder:
    """For inference: a saved-model folder, or a design number / name for an untrained model on `backbone`
    (default smollm2-135m). LoRA adapters are merged in float32 and kept unmerged in lower precisions (see
    `Embedder.load`); `max_length` sets the inference length (default: the saved model's training length, or the
    config default for a design); `dtype` None means 'auto'.

    For a folder, `backbone` is the caller's explicit backbone location (see `Embedder.load`)."""
    path = Path(spec)
    if path.is_dir():
        return Embedder.load(path, dtype=dtype or "auto", device=device, trust_remote_code=trust_remote_code,
                             backbone=backbone, max_length=max_length)
    if any(sep in str(spec) for sep in ("/", "\\")) or str(spec).startswith((".", "~")):
        raise InputNotFoundError(f"--model {str(spec)!r}: no such model folder; give a folder written by "
                                 "`poolattn train` / Embedder.save, or a design number such as 1")
    overrides: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    if trust_remote_code:
        overrides["trust_remote_code"] = True
    try:
        # untrained: the fresh adapters are a no-op (LoRA B starts at zero), so fold them away for speed
        model = Embedder.from_design(str(spec), backbone or "smollm2-135m", device=device, **overrides).merge_lora()
    except ValueError as exc:
        raise InputError(f"--model {str(spec)!r} is neither a saved model folder nor a design: {exc}") from exc
    if max_length is not None:
        model.max_length = max_length
    return model
