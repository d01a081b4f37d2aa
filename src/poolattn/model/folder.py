"""What loading a saved model folder may do: read poolattn.json against a schema, find the backbone, run no code.

A model folder is data that may come from anyone (a colleague, a download), so loading it must not:
- run Python code shipped with it: `trust_remote_code` is the caller's decision (`Embedder.load(...,
  trust_remote_code=True)`, `--trust_remote_code`), never the folder's; a folder whose poolattn.json asks for it,
  or whose config / tokenizer files carry an `auto_map` (the hook transformers uses to import a file), is
  refused unless the caller opted in;
- read weights from outside the folder: its backbone is its own backbone/ folder, an offline model name or a hub
  id; a local path written in poolattn.json is used only when the caller passes it again (`backbone=`);
- unpickle anything: weights come from safetensors files only;
- allocate what a typo or a hostile value asks for: sizes are bounded (config.SIZE_LIMITS).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from poolattn.backbone import offline
from poolattn.config import HEAD_INITS, SIZE_LIMITS, ConfigError, ModelConfig, from_dict
from poolattn.errors import InputError, InputNotFoundError, UnsafeModelError
from poolattn.pooling import pooler_class

# The files of a saved model folder (Embedder.save writes them) and the version of poolattn.json's schema.
CONFIG_FILE = "poolattn.json"
POOLER_FILE = "pooler.safetensors"
ADAPTER_DIR = "adapter"
MERGED_DIR = "backbone"
FORMAT_VERSION = 1

# The keys Embedder.save writes, and the JSON types they must have.
TOP_LEVEL_KEYS: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "poolattn_version": str, "model": dict, "pooler": dict, "merged": bool,
    "embedding_dim": int,
}
REQUIRED_KEYS = ("model", "pooler")
# Files through which transformers would import Python code from the folder (their "auto_map" key).
CODE_HOOK_FILES = ("config.json", "tokenizer_config.json", "backbone/config.json", "backbone/tokenizer_config.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
OPT_IN = "pass trust_remote_code=True to Embedder.load, or --trust_remote_code on the command line"


@dataclass(frozen=True)
class SavedModel:
    """The validated content of a poolattn.json."""

    config: ModelConfig
    pooler_name: str
    pooler_args: dict[str, Any]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits a (simple) type hint: int, float, str, bool, list[...], X | None."""
    origin = typing.get_origin(tp)
    if isinstance(tp, types.UnionType) or origin is typing.Union:
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True


def _check_types(cls: type, data: Any, where: str) -> None:
    """Every value of `data` has the type its dataclass field declares (nested sections recursively)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown key '{where}.{key}'; known keys: {sorted(known)}")
        tp = hints[key]
        if is_dataclass(tp):
            _check_types(tp, value, f"{where}.{key}")
        elif not _matches(value, tp):
            raise ConfigError(f"{where}.{key}={value!r:.80} must be of type {_type_name(tp)}")


def _check_pooler(section: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, dict) or not isinstance(section.get("name"), str):
        raise ConfigError(f"{where} must be {{'name': ..., 'args': {{...}}}}, got {section!r:.80}")
    unknown = sorted(set(section) - {"name", "args"})
    if unknown:
        raise ConfigError(f"unknown key '{where}.{unknown[0]}'; known keys: ['args', 'name']")
    cls = pooler_class(section["name"])
    args = section.get("args", {})
    if not isinstance(args, dict):
        raise ConfigError(f"{where}.args must be a mapping, got {type(args).__name__}")
    params = inspect.signature(cls.__init__).parameters
    allowed = sorted(name for name in params if name != "self")
    for key, value in args.items():
        if key not in params or key == "self":
            raise ConfigError(f"unknown key '{where}.args.{key}' for pooler {section['name']!r}; known: {allowed}")
        if key == "layers":
            if not isinstance(value, list) or not all(isinstance(i, int) and abs(i) <= 4096 for i in value):
                raise ConfigError(f"{where}.args.layers={value!r:.80} must be a list of layer numbers")
        elif key == "layer_summary":
            if value not in ("last", "mean"):
                raise ConfigError(f"{where}.args.layer_summary={value!r:.40} must be 'last' or 'mean'")
        elif key == "init":
            if value not in HEAD_INITS:
                raise ConfigError(f"{where}.args.init={value!r:.40} must be one of {list(HEAD_INITS)}")
        elif not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= SIZE_LIMITS.get(key, 65_536):
            limit = SIZE_LIMITS.get(key, 65_536)
            raise ConfigError(f"{where}.args.{key}={value!r:.40} must be a whole number in 1..{limit:,}")
    missing = [name for name, p in params.items()
               if name != "self" and p.default is inspect.Parameter.empty and name not in args]
    if missing:
        raise ConfigError(f"{where}.args lacks {missing} for pooler {section['name']!r}")
    return section["name"], args


def read_saved_model(path: Path, *, trust_remote_code: bool = False) -> SavedModel:
    """The validated poolattn.json of the model folder `path`.

    Raises:
        InputNotFoundError: `path` does not exist or holds no poolattn.json.
        InputError / ConfigError: poolattn.json is not valid JSON, has an unknown key, a wrong type or a value
            out of bounds (the message names the file and the key).
        UnsafeModelError: it asks for trust_remote_code while the caller did not.
    """
    if not path.exists():
        raise InputNotFoundError(f"model folder {str(path)!r} does not exist")
    meta_file = path / CONFIG_FILE
    if not path.is_dir() or not meta_file.is_file():
        raise InputNotFoundError(
            f"{str(path)!r} is not a saved poolattn model (no {CONFIG_FILE}); give a folder written by "
            "Embedder.save / `poolattn train`, or a design number such as 1"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_file}: not valid UTF-8 JSON ({exc}); save the model again") from None
    try:
        if not isinstance(meta, dict):
            raise ConfigError(f"must hold a JSON object, got {type(meta).__name__}")
        for key, value in meta.items():
            if key not in TOP_LEVEL_KEYS:
                raise ConfigError(f"unknown key '{key}'; known keys: {sorted(TOP_LEVEL_KEYS)}")
            kind = TOP_LEVEL_KEYS[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"key '{key}'={value!r:.60} must be of type {_type_name(kind)}")
        missing = [key for key in REQUIRED_KEYS if key not in meta]
        if missing:
            raise ConfigError(f"missing key '{missing[0]}' (Embedder.save writes {list(REQUIRED_KEYS)})")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ConfigError(f"was written by a newer poolattn ({meta.get('poolattn_version')}); upgrade poolattn")
        _check_types(ModelConfig, meta["model"], "model")
        config = from_dict(ModelConfig, meta["model"], where="model")
        pooler_name, pooler_args = _check_pooler(meta["pooler"], "pooler")
    except (ConfigError, InputError) as exc:
        raise ConfigError(f"{meta_file}: {exc}") from None
    if config.trust_remote_code and not trust_remote_code:
        raise UnsafeModelError(
            f"{meta_file}: model.trust_remote_code is true, so loading would run Python code shipped with the "
            f"model. poolattn never takes that from a folder; if you trust its source, {OPT_IN}"
        )
    return SavedModel(config, pooler_name, pooler_args)


def refuse_code_hooks(path: Path, *, trust_remote_code: bool = False) -> None:
    """Refuse a folder whose config or tokenizer files would make transformers import a Python file from it.

    Raises:
        UnsafeModelError: an `auto_map` key in one of CODE_HOOK_FILES, unless the caller trusts the folder.
    """
    if trust_remote_code:
        return
    for name in CODE_HOOK_FILES:
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{file}: not valid UTF-8 JSON ({exc})") from None
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeModelError(
                f"{file}: key 'auto_map' would make transformers import Python code from the model folder; "
                f"poolattn does not run it by default. If you trust the folder's source, {OPT_IN}"
            )


def _inside(child: Path, parent: Path) -> bool:
    return child.resolve().is_relative_to(parent.resolve())


def backbone_location(path: Path, config: ModelConfig, *, explicit: str | None = None) -> tuple[str, bool]:
    """(where to load the backbone from, whether it is the folder's own backbone/), by the rules above.

    The folder's own backbone/ comes first, then the caller's `explicit` location, then `config.backbone` when it
    is an offline name or a hub id.

    Raises:
        UnsafeModelError: poolattn.json names a local path (or backbone/ leads outside the folder) and the
            caller gave no explicit `backbone`.
    """
    merged = path / MERGED_DIR
    if merged.exists():  # a merged model's weights are its own: an explicit backbone would not match them
        if not merged.is_dir() or not _inside(merged, path):
            raise UnsafeModelError(f"{merged} leads outside the model folder {str(path)!r}; refusing to load it")
        return str(merged), True
    if explicit is not None:
        return offline.resolve(explicit), False
    name = config.backbone
    if name in offline.OFFLINE_MODELS:
        return offline.resolve(name), False
    if _HUB_ID.fullmatch(name) and ".." not in name and not Path(name).exists():
        return name, False
    raise UnsafeModelError(
        f"{path / CONFIG_FILE}: model.backbone={name!r} is a local path; a saved model's backbone is its own "
        f"{MERGED_DIR}/ folder, an offline model {sorted(offline.OFFLINE_MODELS)} or a hub id. If you trust that "
        f"path, pass it explicitly: Embedder.load(..., backbone={name!r}) or --backbone {name}"
    )
