"""The typed configuration tree: defaults, validation, YAML and dotted-key overrides.

One `Config` object describes a whole run. It is built from the defaults, then a design preset, then a YAML
file, then explicit flags (in that order of precedence). Every section validates itself in `__post_init__`,
so a bad value fails when it is read, not three hours into a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from poolattn.errors import UsageError

ATTENTION_MODES = ("causal", "bidirectional")
PADDING_SIDES = ("left", "right")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
CONTRASTIVE_BATCHES = ("global", "per_device")
ON_BAD_RECORD = ("error", "skip")
HEAD_INITS = ("paper", "residual")  # how a trainable pooling head starts (PoolingConfig.init)
DEFAULT_INSTRUCTION_TEMPLATE = "Instruct: {instruction}\nQuery: "
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Upper bounds on sizes: far above any real model (the paper's head: 768 latents, 32 heads of size 2048), low
# enough that a mistyped or hostile value fails here instead of asking the allocator for terabytes.
SIZE_LIMITS = {"num_latents": 65_536, "num_heads": 1_024, "head_dim": 65_536, "ff_mult": 64,
               "max_length": 1_048_576, "hidden_size": 65_536}


class ConfigError(UsageError, ValueError):
    """A configuration value is missing, unknown or out of range."""


def _check_choice(section: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{section}.{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _check_positive(section: str, name: str, value: Any, *, allow_none: bool = False, zero_ok: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= 0 if zero_ok else value > 0):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"{section}.{name}={value!r} must be a finite number {bound}")
    limit = SIZE_LIMITS.get(name)
    if limit is not None and value > limit:
        raise ConfigError(f"{section}.{name}={value!r} is over the limit of {limit:,}; did you mean a smaller value?")


def comma_list(text: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated list: "1, 5,,x" -> ["1", "5", "x"]."""
    return [item.strip() for item in text.split(",") if item.strip()]


def dtype_name(value: Any) -> Any:
    """A dtype given as a torch dtype (`torch.float32`) or a string ("torch.bfloat16", "float32") -> its name.

    Anything else is returned as is, for the caller's validation to reject with the allowed names.
    """
    text = str(value)
    if not isinstance(value, str) and not text.startswith("torch."):
        return value
    return text.removeprefix("torch.")


# --------------------------------------------------------------------------------------------------- model


@dataclass
class PoolingConfig:
    """Which pooling head and its size.

    `preset` sizes the trainable heads: "compact" is sized for the backbone (a few million parameters on a
    small model); "paper" is the published head (768 latents, 32 heads of size 2048, GEGLU x4 feed-forward:
    1.28B parameters on a 4096-wide model). Explicit fields override the preset.
    """

    name: str = "eos"
    preset: str = "compact"
    num_latents: int | None = None
    num_heads: int | None = None
    head_dim: int | None = None
    ff_mult: int | None = None
    # multilayer only: which transformer layers (1-based, as in HF hidden_states; negatives count from the end)
    layers: list[int] | None = None
    # multilayer only: how one layer becomes one vector; "auto" = last token (causal) / masked mean (bidirectional)
    layer_summary: str = "auto"
    # trainable heads: "paper" = the published random start; "residual" = start exactly at the head's fixed
    # counterpart (masked mean of the last layer for latent, the last layer's summary for multilayer) and learn a
    # zero-initialised correction on top of it
    init: str = "paper"

    def __post_init__(self) -> None:
        _check_choice("pooling", "preset", self.preset, ("compact", "paper"))
        _check_choice("pooling", "layer_summary", self.layer_summary, ("auto", "last", "mean"))
        _check_choice("pooling", "init", self.init, HEAD_INITS)
        for name in ("num_latents", "num_heads", "head_dim", "ff_mult"):
            _check_positive("pooling", name, getattr(self, name), allow_none=True)
        if self.layers is not None and (not self.layers or not all(isinstance(i, int) for i in self.layers)):
            raise ConfigError(f"pooling.layers={self.layers!r} must be a non-empty list of layer numbers or null")


@dataclass
class LoraConfig:
    """LoRA adapters (peft). Defaults are the paper's: r 16, alpha 32, dropout 0.1 on all seven projections.

    `layers` restricts LoRA to some transformer layers (0-based, negatives count from the end): backpropagation
    then stops at the lowest adapted layer, which makes a training step cheaper. `bidirectional_layers` is the
    restriction under bidirectional attention: "same" (the default) takes `layers`; null adapts every layer, which
    a causal LLM run bidirectionally may need, since every layer then sees a mask it was not pretrained with.
    `ModelConfig.lora_layers` is the list that applies.
    """

    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    layers: list[int] | None = None
    bidirectional_layers: list[int] | str | None = "same"

    def __post_init__(self) -> None:
        _check_positive("lora", "r", self.r)
        _check_positive("lora", "alpha", self.alpha)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"lora.dropout={self.dropout!r} must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError("lora.target_modules is empty; name at least one module, e.g. ['q_proj', 'v_proj']")
        for name in ("layers", "bidirectional_layers"):
            value = getattr(self, name)
            if value is None or (name == "bidirectional_layers" and value == "same"):
                continue
            if not isinstance(value, list) or not value or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in value):
                extra = ', "same" (as lora.layers)' if name == "bidirectional_layers" else ""
                raise ConfigError(f"lora.{name}={value!r} must be a non-empty list of layer numbers (negatives count "
                                  f"from the end), null (every layer){extra}")


@dataclass
class ModelConfig:
    """Backbone + attention mode + pooling head (+ LoRA): everything needed to rebuild an `Embedder`."""

    backbone: str = "smollm2-135m"
    attention: str = "causal"
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    max_length: int = 512
    padding_side: str = "right"
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    exclude_instruction: bool = True
    instruction_template: str = DEFAULT_INSTRUCTION_TEMPLATE
    trust_remote_code: bool = False
    seed: int = 0
    # frozen-prefix cache (backbone/prefix.py): "auto" runs the layers below the first adapted one once per text
    # wherever that is exact (it says so when it switches itself off); "off" always runs every layer
    prefix_cache: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(f"model.backbone={self.backbone!r} must name a model (e.g. 'smollm2-135m') or a folder")
        _check_choice("model", "attention", self.attention, ATTENTION_MODES)
        _check_choice("model", "padding_side", self.padding_side, PADDING_SIDES)
        if isinstance(self.prefix_cache, bool):  # YAML reads a bare `off` (and `on`) as a boolean
            self.prefix_cache = "auto" if self.prefix_cache else "off"
        _check_choice("model", "prefix_cache", self.prefix_cache, ("auto", "off"))
        self.dtype = dtype_name(self.dtype)
        _check_choice("model", "dtype", self.dtype, DTYPES)
        _check_choice("model", "attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)
        _check_positive("model", "max_length", self.max_length)
        if self.max_length < 2:
            raise ConfigError(f"model.max_length={self.max_length} leaves no room for text and the EOS token")
        if "{instruction}" not in self.instruction_template:
            raise ConfigError(
                f"model.instruction_template={self.instruction_template!r} must contain '{{instruction}}'"
            )

    @property
    def lora_layers(self) -> list[int] | None:
        """The layers LoRA adapts under this attention mode (None: every layer): `lora.layers`, or under
        bidirectional attention `lora.bidirectional_layers` unless that is "same"."""
        lora = self.lora
        if self.attention == "bidirectional" and lora.bidirectional_layers != "same":
            return lora.bidirectional_layers
        return lora.layers


# ---------------------------------------------------------------------------------------------- training


@dataclass
class LossConfig:
    """InfoNCE over cosine similarities (scale = 1 / temperature) with in-batch and hard negatives."""

    name: str = "info_nce"
    scale: float = 50.0
    contrastive_batch: str = "global"
    # records per forward pass (default: per_device_train_batch_size)
    grad_cache_chunk_size: int | None = None
    # two-pass GradCache (memory of one chunk) or one pass keeping every chunk's graph (faster, more memory);
    # null: GradCache exactly when a step holds more records than one chunk
    grad_cache: bool | None = None

    def __post_init__(self) -> None:
        _check_positive("loss", "scale", self.scale)
        _check_choice("loss", "contrastive_batch", self.contrastive_batch, CONTRASTIVE_BATCHES)
        _check_positive("loss", "grad_cache_chunk_size", self.grad_cache_chunk_size, allow_none=True)


@dataclass
class DataConfig:
    """Where training triples come from. No dataset given means the bundled training set."""

    dataset_name: str | None = None
    dataset_file_path: str | None = None
    dataset_split: str = "train"
    on_bad_record: str = "error"
    # an unknown field in a record (often a misspelt one) is a bad record instead of a warning
    strict: bool = False
    max_records: int | None = None
    same_source_batches: bool = True
    default_instruction: str | None = None
    # records held back from training for the in-training retrieval check (0 = none)
    holdout: int = 0

    def __post_init__(self) -> None:
        _check_choice("data", "on_bad_record", self.on_bad_record, ON_BAD_RECORD)
        _check_positive("data", "max_records", self.max_records, allow_none=True)
        _check_positive("data", "holdout", self.holdout, zero_ok=True)
        if self.dataset_name and self.dataset_file_path:
            raise ConfigError("data.dataset_name and data.dataset_file_path are both set; give one")


BF16_UNSET = "bf16 autocast if the weights are bfloat16"  # what train.bf16: null means, in words


@dataclass
class TrainConfig:
    """Training schedule. Field names follow `transformers.TrainingArguments`, so familiar flags work."""

    output_dir: str = "runs/poolattn"
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    # peak learning rate of the trainable pooling head (null: learning_rate); the schedule scales it like the LoRA
    # rate. A fresh head starts from random latents while LoRA starts at zero: one rate need not suit both
    head_learning_rate: float | None = None
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int = -1
    num_train_epochs: float = 1.0
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"
    # bfloat16 autocast; null: exactly when the backbone's weights are bfloat16 (model.dtype, 'auto' resolved)
    bf16: bool | None = None
    fp16: bool = False
    logging_steps: float = 10
    save_steps: float = 500
    save_total_limit: int | None = None
    seed: int = 42
    report_to: list[str] = field(default_factory=lambda: ["none"])
    gradient_checkpointing: bool = False
    resume_from_checkpoint: str | None = None
    dataloader_num_workers: int = 0
    deepspeed: str | None = None
    skip_nonfinite: bool = False
    disable_tqdm: bool = False
    overwrite_output_dir: bool = False
    # how often the held-out retrieval check runs (0 = before and after training only)
    eval_steps: int = 0
    # attention kernel while training (null = model.attn_implementation); on CPU eager's backward is ~1.7x faster
    # than sdpa's, while sdpa is the faster one for encoding, which keeps model.attn_implementation
    attn_implementation: str | None = None

    def __post_init__(self) -> None:
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            _check_positive("train", name, getattr(self, name))
        _check_positive("train", "learning_rate", self.learning_rate, zero_ok=True)
        if self.head_learning_rate is not None:
            _check_positive("train", "head_learning_rate", self.head_learning_rate, zero_ok=True)
        _check_positive("train", "weight_decay", self.weight_decay, zero_ok=True)
        _check_positive("train", "max_grad_norm", self.max_grad_norm, zero_ok=True)
        _check_positive("train", "num_train_epochs", self.num_train_epochs, zero_ok=True)
        _check_positive("train", "logging_steps", self.logging_steps)
        _check_positive("train", "save_steps", self.save_steps)
        _check_positive("train", "warmup_steps", self.warmup_steps, zero_ok=True)
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise ConfigError(
                f"train.max_steps={self.max_steps} with num_train_epochs={self.num_train_epochs} trains nothing; "
                "set max_steps > 0 or num_train_epochs > 0"
            )
        if self.bf16 and self.fp16:
            raise ConfigError("train.bf16 and train.fp16 are both set; choose one")
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        if self.attn_implementation is not None:
            _check_choice("train", "attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)

    @property
    def local_batch(self) -> int:
        """Records one process embeds for one optimizer step: per-device batch x accumulation.

        Accumulation means more texts in one contrastive batch, not more optimizer micro-steps: the dataloader hands
        each process this many records at once (see training/trainer.py).
        """
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


# -------------------------------------------------------------------------------------- evaluation, study


@dataclass
class EvalConfig:
    """Which tasks to evaluate on and how."""

    tasks: list[str] = field(default_factory=lambda: ["suite"])
    batch_size: int = 32
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = comma_list(self.tasks)
        if not self.tasks:
            raise ConfigError("eval.tasks is empty; name tasks or use 'suite' for the offline suite")
        _check_positive("eval", "batch_size", self.batch_size)
        self.dtype = dtype_name(self.dtype)
        _check_choice("eval", "dtype", self.dtype, DTYPES)


@dataclass
class StudyConfig:
    """The controlled comparison: which designs, which baseline, where the report goes."""

    designs: list[int | str] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    baseline: str | None = "1"
    output_dir: str = "study"
    seeds: list[int] | None = None
    """Train every design once per seed (model.seed and train.seed both set to it); None: once, with the config's."""

    def __post_init__(self) -> None:
        if not self.designs:
            raise ConfigError("study.designs is empty; list designs such as [1, 2, 3, 4, 5]")
        if self.seeds is not None:
            if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
                raise ConfigError(f"study.seeds must be a non-empty list of integers, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"study.seeds lists a seed twice: {self.seeds!r}")


@dataclass
class Config:
    """The whole run: model, loss, data, training, evaluation, study."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    # ---- conversion ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Config:
        return from_dict(cls, data or {}, where="config")


# ------------------------------------------------------------------------------------------ construction


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_type(tp: Any) -> type | None:
    """The dataclass inside `tp` (also inside `X | None`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def from_dict(cls: type, data: dict[str, Any], *, where: str) -> Any:
    """Build dataclass `cls` from a plain dict, recursing into nested sections; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}: {data!r}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {close}?" if close else f"; known keys: {sorted(known)}"
            raise ConfigError(f"unknown key '{where}.{key}'{hint}")
        sub = _dataclass_type(hints[key])
        kwargs[key] = from_dict(sub, value, where=f"{where}.{key}") if sub and isinstance(value, dict) else value
    return cls(**kwargs)


def merge(config: Config, data: dict[str, Any]) -> Config:
    """A new Config: `config` with the (nested) values of `data` laid over it, validated again."""
    return Config.from_dict(_deep_update(config.to_dict(), data))


def _deep_update(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_update(into[key], value)
        else:
            into[key] = value
    return into


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a config file into a plain dict (errors name the file).

    A file may start from another with `extends: other.yaml` (relative to its own folder) and change only what
    differs, so a variant preset states its difference and nothing else.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.resolve() in _seen:
        raise ConfigError(f"config file {str(path)!r} extends itself (through {[str(p) for p in _seen]})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is not None:
        base = load_yaml(path.parent / str(parent), _seen + (path.resolve(),))
        data = _deep_update(base, data)
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the YAML file, then `overrides` (nested dict or dotted keys)."""
    config = Config()
    if path is not None:
        config = merge(config, load_yaml(path))
    if overrides:
        config = merge(config, unflatten(overrides))
    return config


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{'model.pooling.name': 'mean'} -> {'model': {'pooling': {'name': 'mean'}}}; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return out
