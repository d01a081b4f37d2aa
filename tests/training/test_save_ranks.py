"""Which ranks write the final model: under DeepSpeed, Trainer.save_model calls `_save` on every rank."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from poolattn.training.trainer import PoolattnTrainer


class _RecordingModel:
    def __init__(self):
        self.saved_to: list[str] = []

    def save(self, path):
        self.saved_to.append(str(path))


def _rank(should_save: bool, output_dir):
    model = _RecordingModel()
    trainer = SimpleNamespace(args=SimpleNamespace(should_save=should_save, output_dir=str(output_dir)), model=model,
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    return trainer, model


@pytest.mark.parametrize("should_save", [True, False])
def test_only_the_writer_rank_saves_the_model(tmp_path, should_save):
    # two ranks writing one folder raced: one read poolattn.json while the other had just truncated it
    trainer, model = _rank(should_save, tmp_path / "default")
    PoolattnTrainer._save(trainer, str(tmp_path / "out"))
    assert model.saved_to == ([str(tmp_path / "out")] if should_save else [])
    PoolattnTrainer._save(trainer)
    assert model.saved_to[-1:] == ([str(tmp_path / "default")] if should_save else [])
