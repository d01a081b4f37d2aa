"""The model card: every saved folder and every training run gets a README.md that says what the model is."""

from __future__ import annotations

import json

import numpy as np

from poolattn.model.card import MARKER, write_model_card
from poolattn.cli import main
from poolattn.model import Embedder
from poolattn.training.run import train
from tests.test_model import _embedder, _perturb_lora
from tests.training.test_train import _config


def test_saved_folder_has_a_card_and_no_peft_readme(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, 4)
    model.save(tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith(MARKER)
    for text in ("design 4 (latent-bidirectional)", f"| backbone | {tiny_llama} |", "| attention | bidirectional |",
                 "| pooling | latent", "r 16, alpha 32, dropout 0.1", "| embedding dimension | 32 |",
                 "| max length | 64 tokens", "No training record", 'Embedder.load("m")',
                 'SentenceTransformer("m-st", trust_remote_code=True)'):
        assert text in card, text
    assert not (tmp_path / "m" / "adapter" / "README.md").exists()  # peft's generic card
    assert (tmp_path / "m" / "adapter" / "adapter_model.safetensors").is_file()


def test_a_training_run_writes_its_data_steps_and_holdout_into_the_card(tiny_llama, tmp_path):
    config = _config(tiny_llama, tmp_path, design=1, max_steps=2, save_steps=10)
    config.data.holdout = 6
    train(config)
    card = (tmp_path / "run" / "README.md").read_text()
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    for text in (f"| data | {tmp_path / 'train.jsonl'} |", "| steps | 2 |", f"| records | {summary['records']} |",
                 "| contrastive batch | 4 texts per softmax |", "scale 20.0", "| held-out recall@1 |",
                 "SentenceTransformer(\"run-st\")"):
        assert text in card, text
    before = summary["holdout"]["before"]["recall@1"]
    assert f"{before:.3f} before" in card
    # the sentence-transformers export's card keeps the run's record
    from poolattn.model.export import export_sentence_transformers

    export_sentence_transformers(tmp_path / "run", tmp_path / "run-st", backbone=str(tiny_llama))
    exported = (tmp_path / "run-st" / "README.md").read_text()
    assert "| steps | 2 |" in exported and f"{before:.3f} before" in exported
    assert 'SentenceTransformer("run-st")' in exported


def test_evaluation_inside_the_model_folder_joins_the_card(tiny_llama, tmp_path, capsys):
    from tests.evaluation.encoders import FIXTURE_SUITE

    model = Embedder.from_design(1, str(tiny_llama), device="cpu", max_length=256)  # room for the instruction
    model.save(tmp_path / "m")
    assert "## Evaluation" not in (tmp_path / "m" / "README.md").read_text()
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--backbone", str(tiny_llama), "--tasks", "FixtureSTS", "--output",
                 str(tmp_path / "m" / "eval"), "--suite-dir", str(FIXTURE_SUITE), "--no-progress"]) == 0
    score = json.loads((tmp_path / "m" / "eval" / "results.json").read_text())["FixtureSTS"]["main_score"]
    assert f"| FixtureSTS | sts | {score:.4f} |" in (tmp_path / "m" / "README.md").read_text()


def test_a_readme_poolattn_did_not_write_is_left_alone(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, 1)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "README.md").write_text("my own notes")
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "README.md").read_text() == "my own notes"
    assert write_model_card(tmp_path / "m") is None


def test_resaving_a_loaded_model_keeps_its_trained_weights(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, 1)
    _perturb_lora(model)
    model.save(tmp_path / "a")
    loaded = Embedder.load(tmp_path / "a", device="cpu", backbone=str(tiny_llama))  # adapters merged for inference
    loaded.save(tmp_path / "b")
    again = Embedder.load(tmp_path / "b", device="cpu")
    np.testing.assert_allclose(again.encode(["hello there"]), model.encode(["hello there"]), atol=1e-5)
    assert "(merged into the saved backbone)" in (tmp_path / "b" / "README.md").read_text()


def test_a_study_runs_scores_next_to_its_model_folder_join_the_card(tiny_llama, tmp_path):
    # the study's layout: <run>/model (the trained model) and <run>/eval (results.json)
    _embedder(tiny_llama, 1).save(tmp_path / "run" / "model")
    (tmp_path / "run" / "eval").mkdir()
    results = {"TaskA": {"main_score": 0.123456, "category": "retrieval"}}
    (tmp_path / "run" / "eval" / "results.json").write_text(json.dumps(results))
    write_model_card(tmp_path / "run" / "model")
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "`../eval/results.json`" in card and "| TaskA | retrieval | 0.1235 |" in card
