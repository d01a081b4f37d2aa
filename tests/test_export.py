"""Export to sentence-transformers: the loaded folder gives Embedder.encode's embeddings, for every design."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from poolattn.designs import DESIGNS
from poolattn.model import Embedder
from poolattn.model.export import export_sentence_transformers, needs_trust_remote_code
from tests.test_model import _embedder, _perturb_lora

# the last text is longer than max_length=64, so truncation (with room kept for EOS) is compared too
TEXTS = ["the cat sat on the mat", "a dog", "", "stocks fell sharply on tuesday after the report", "x" * 90]
INSTRUCTION = "Given a word, retrieve sentences about it"


def _compare(model: Embedder, st: SentenceTransformer) -> None:
    queries = st.encode_query(TEXTS, convert_to_numpy=True, batch_size=2)
    documents = st.encode_document(TEXTS, convert_to_numpy=True, batch_size=2)
    expected_queries = model.encode(TEXTS, instruction=INSTRUCTION)
    expected_documents = model.encode(TEXTS)
    assert np.abs(queries - expected_queries).max() <= 1e-5
    assert np.abs(documents - expected_documents).max() <= 1e-5
    # the instruction changes the queries, so a lost prompt could not pass the first check
    assert np.abs(expected_queries - expected_documents).max() > 1e-3
    named = st.encode(TEXTS[:2], prompt_name="query", convert_to_numpy=True)
    assert np.abs(named - expected_queries[:2]).max() <= 1e-5


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_export_gives_the_same_embeddings(tiny_llama, tmp_path, design):
    model = _embedder(tiny_llama, design)
    _perturb_lora(model)  # non-zero LoRA: an unmerged export would differ
    out = export_sentence_transformers(model, tmp_path / "st", instruction=INSTRUCTION)
    st = SentenceTransformer(str(out), device="cpu", trust_remote_code=needs_trust_remote_code(model.config.pooling.name))
    _compare(model, st)
    if model.config.attention == "bidirectional":
        backbone_config = json.loads((out / "backbone" / "config.json").read_text())
        assert backbone_config["is_causal"] is False


def test_eos_export_is_plain_sentence_transformers_and_keeps_bidirectional_attention(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, "eos-bidirectional")
    _perturb_lora(model)
    # a chat template (as SmolLM2's tokenizer has) must not make sentence-transformers wrap texts in messages
    model.tokenizer.chat_template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    out = export_sentence_transformers(model, tmp_path / "st", instruction=INSTRUCTION)
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert all(m["type"].startswith("sentence_transformers.") for m in modules)
    assert json.loads((out / "config.json").read_text())["is_causal"] is False
    st = SentenceTransformer(str(out), device="cpu")  # no trust_remote_code
    card = (out / "README.md").read_text()
    assert 'SentenceTransformer("st")' in card and "| attention | bidirectional |" in card
    _compare(model, st)
    # negative control: the same weights under causal attention give other vectors
    causal = _embedder(tiny_llama, "eos-causal")
    _perturb_lora(causal)
    assert np.abs(causal.encode(TEXTS) - st.encode_document(TEXTS, convert_to_numpy=True)).max() > 1e-3


def test_trainable_head_needs_trust_remote_code_and_loads_with_embedder_too(tiny_llama, tmp_path):
    model = _embedder(tiny_llama, 5)
    _perturb_lora(model)
    out = export_sentence_transformers(model, tmp_path / "st")
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(out), device="cpu")
    assert json.loads((out / "modules.json").read_text())[0]["type"] == "poolattn.model.st_module.PoolattnModule"
    assert not list(out.rglob("*.py"))  # nothing in the folder is code
    again = Embedder.load(out, device="cpu")
    np.testing.assert_allclose(again.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def test_an_export_naming_the_old_module_path_still_loads(tiny_llama, tmp_path):
    # exports written before poolattn/model/ existed record poolattn.st_module.PoolattnModule in modules.json
    model = _embedder(tiny_llama, 5)
    _perturb_lora(model)
    out = export_sentence_transformers(model, tmp_path / "st", instruction=INSTRUCTION)
    modules = json.loads((out / "modules.json").read_text())
    modules[0]["type"] = "poolattn.st_module.PoolattnModule"
    (out / "modules.json").write_text(json.dumps(modules))
    st = SentenceTransformer(str(out), device="cpu", trust_remote_code=True)
    _compare(model, st)
    # negative control: a path that names no module is refused, so the old path is really the one resolved
    modules[0]["type"] = "poolattn.no_such_module.PoolattnModule"
    (out / "modules.json").write_text(json.dumps(modules))
    with pytest.raises((ImportError, ValueError)):
        SentenceTransformer(str(out), device="cpu", trust_remote_code=True)


def test_export_refuses_a_non_empty_folder(tiny_llama, tmp_path):
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        export_sentence_transformers(_embedder(tiny_llama, 1), tmp_path / "st")
    assert (tmp_path / "st" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
@pytest.mark.parametrize("design", [1, 5])
def test_export_of_the_real_backbone_gives_the_same_embeddings(tmp_path, design):
    # SmolLM2's own tokenizer (BPE, a different tokenizer class from the tiny models' one) and a short max_length
    model = Embedder.from_design(design, "smollm2-135m", device="cpu", dtype="float32", max_length=24)
    with torch.no_grad():  # small non-zero LoRA B, so the merge is exercised
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.01)
    out = export_sentence_transformers(model, tmp_path / "st", instruction=INSTRUCTION)
    st = SentenceTransformer(str(out), device="cpu", trust_remote_code=design != 1)
    _compare(model, st)


def test_export_command_writes_a_loadable_folder(tiny_llama, tmp_path, capsys):
    from poolattn.cli import main

    model = _embedder(tiny_llama, 2)
    _perturb_lora(model)
    model.save(tmp_path / "trained")
    code = main(["export", str(tmp_path / "trained"), str(tmp_path / "st"), "--format", "sentence-transformers",
                 "--instruction", INSTRUCTION, "--backbone", str(tiny_llama)])
    assert code == 0
    assert "trust_remote_code=True" in capsys.readouterr().out
    card = (tmp_path / "st" / "README.md").read_text()
    assert "sentence-transformers export of `trained`" in card
    assert 'SentenceTransformer("st", trust_remote_code=True)' in card and "design 2 (latent-causal)" in card
    _compare(Embedder.load(tmp_path / "trained", device="cpu", backbone=str(tiny_llama)),
             SentenceTransformer(str(tmp_path / "st"), device="cpu", trust_remote_code=True))


def test_eos_export_keeps_a_tokenizer_bos(tiny_llama, tmp_path):
    # Llama/Mistral-style tokenizers put BOS first; the exported post-processor must keep it and add EOS last
    from tokenizers import processors

    model = _embedder(tiny_llama, 1)
    _perturb_lora(model)
    model.tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", model.tokenizer.bos_token_id)])
    ids = model.tokenize(["ab"])["input_ids"][0].tolist()
    assert ids[0] == model.tokenizer.bos_token_id and ids[-1] == model.tokenizer.eos_token_id
    st = SentenceTransformer(str(export_sentence_transformers(model, tmp_path / "st", instruction=INSTRUCTION)),
                             device="cpu")
    assert st.preprocess(["ab"])["input_ids"][0].tolist() == ids
    _compare(model, st)
