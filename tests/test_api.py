"""The sentence-transformers-style API of Embedder: encode_query / encode_document, similarity, dtypes,
raw vectors, tensors, and the inference length as the user's choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poolattn.config import ConfigError
from poolattn.model import DEFAULT_QUERY_INSTRUCTION, Embedder, resolve_model
from tests.test_model import _embedder, _perturb_lora

TEXTS = ["the cat sat on the mat", "a dog", "stocks fell sharply on tuesday after the report"]


@pytest.fixture(scope="module")
def model(tiny_llama):
    model = _embedder(tiny_llama, 5)
    _perturb_lora(model)
    return model


def test_encode_query_and_document_are_encode_with_and_without_instruction(model):
    np.testing.assert_array_equal(model.encode_query(TEXTS, instruction="find pets"),
                                  model.encode(TEXTS, instruction="find pets"))
    np.testing.assert_array_equal(model.encode_query(TEXTS), model.encode(TEXTS, instruction=DEFAULT_QUERY_INSTRUCTION))
    np.testing.assert_array_equal(model.encode_document(TEXTS), model.encode(TEXTS))
    assert np.abs(model.encode_query(TEXTS) - model.encode_document(TEXTS)).max() > 1e-3
    with pytest.raises(TypeError, match="no instruction"):
        model.encode_document(TEXTS, instruction="x")


def test_similarity_is_the_cosine_matrix(model):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    expected = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(model.similarity(a, b), expected, atol=1e-6)
    tensor = model.similarity(torch.tensor(a), torch.tensor(b))
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_allclose(tensor.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="same width"):
        model.similarity(a, b[:, :3])


def test_raw_vectors_normalise_to_the_default_output(model):
    raw = model.encode(TEXTS, normalize=False)
    unit = model.encode(TEXTS)
    norms = np.linalg.norm(raw, axis=1)
    assert np.abs(norms - 1.0).max() > 1e-2  # really not normalised
    np.testing.assert_allclose(raw / norms[:, None], unit, atol=1e-6)


def test_convert_to_torch(model):
    tensor = model.encode(TEXTS, convert_to="torch")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), model.encode(TEXTS))
    with pytest.raises(ValueError, match="convert_to='list'"):
        model.encode(TEXTS, convert_to="list")


def test_dimension_under_both_names(model):
    assert model.get_sentence_embedding_dimension() == model.embedding_dim == 32


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "torch.float32", "bfloat16"])
def test_dtype_accepts_torch_dtypes_and_names(tiny_llama, dtype):
    model = Embedder.from_design(1, str(tiny_llama), device="cpu", dtype=dtype)
    expected = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype).removeprefix("torch."))
    assert next(model.backbone.parameters()).dtype == expected
    assert model.config.dtype == str(expected).removeprefix("torch.")


def test_a_bad_dtype_names_the_allowed_ones(tiny_llama):
    with pytest.raises(ConfigError, match="int8.*float32"):
        Embedder.from_design(1, str(tiny_llama), device="cpu", dtype=torch.int8)


def test_max_length_is_the_users_choice_at_load_and_after(tiny_llama, tmp_path):
    trained = _embedder(tiny_llama, 1)  # saved with max_length 64
    _perturb_lora(trained)
    trained.save(tmp_path / "m")
    long_text = ["y" * 150]
    same_start = ["the start is shared " * 5 + "then it ends one way", "the start is shared " * 5 + "or another"]
    default = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama))
    assert default.max_length == 64
    longer = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), max_length=200)
    assert longer.max_length == 200 and longer.config.max_length == 64  # the training length stays recorded
    assert len(longer.tokenize(long_text)["input_ids"][0]) == 151  # 150 characters + EOS, nothing cut
    # a text that fits both lengths is the same; one that does not is no longer truncated
    np.testing.assert_allclose(longer.encode(TEXTS), default.encode(TEXTS), atol=1e-6)
    cut = default.encode(same_start)  # both cut inside the shared start: the same vector
    np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)
    whole = longer.encode(same_start)
    assert np.abs(whole[0] - whole[1]).max() > 1e-3
    default.max_length = 200
    np.testing.assert_allclose(default.encode(same_start), whole, atol=1e-6)
    assert resolve_model(tmp_path / "m", device="cpu", max_length=100, backbone=str(tiny_llama)).max_length == 100


def test_max_length_is_bounded_by_the_backbone_context(model):
    with pytest.raises(ValueError, match="context of 256 tokens"):
        model.max_length = 257
    with pytest.raises(ValueError, match=">= 2"):
        model.max_length = 1


def test_encode_command_takes_the_inference_length(tiny_llama, tmp_path, capsys):
    from poolattn.cli import main

    trained = _embedder(tiny_llama, 1)  # saved with max_length 64
    _perturb_lora(trained)
    trained.save(tmp_path / "m")
    texts = ["the start is shared " * 5 + "then it ends one way", "the start is shared " * 5 + "or another"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    code = main(["encode", "--model", str(tmp_path / "m"), "--backbone", str(tiny_llama), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "e.npy"), "--max_length", "200", "--no-progress"])
    assert code == 0
    expected = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama), max_length=200).encode(texts)
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), expected, atol=1e-6)
    code = main(["encode", "--model", str(tmp_path / "m"), "--backbone", str(tiny_llama), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "e.npy"), "--max_length", "5000"])
    assert code == 2 and "context of 256 tokens" in capsys.readouterr().err
