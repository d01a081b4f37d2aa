"""The mteb adapter's instruction policy: which texts get which instruction, and where it comes from."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest
from mteb.models import EncoderProtocol
from mteb.types import PromptType

from poolattn.evaluation.mteb import MtebAdapter
from poolattn.evaluation.run import evaluate
from poolattn.evaluation.tasks import get_tasks, read_manifest


def _payload(suite, name):
    entry = next(e for e in read_manifest(suite) if e.name == name)
    with gzip.open(suite / entry.file, "rt", encoding="utf-8") as handle:
        return entry, json.load(handle)


def _run(encoder, suite, name):
    evaluate(encoder, [name], None, suite_dir=suite, show_progress=False)
    return encoder.calls


def test_adapter_satisfies_mteb_encoder_protocol(hashing_encoder):
    adapter = MtebAdapter(hashing_encoder, model_name="hashing")
    assert isinstance(adapter, EncoderProtocol)
    assert adapter.mteb_model_meta.name == "poolattn/hashing"
    assert adapter.mteb_model_meta.similarity_fn_name.value == "cosine"


@pytest.mark.parametrize("name", ["FixtureRetrieval", "FixtureReranking"])
def test_retrieval_queries_get_the_instruction_and_documents_none(fixture_suite, recording_encoder, name):
    entry, payload = _payload(fixture_suite, name)
    if name == "FixtureRetrieval":
        queries, documents = set(payload["queries"].values()), set(payload["corpus"].values())
    else:
        queries = {item["query"] for item in payload["test"]}
        documents = {doc for item in payload["test"] for doc in item["positive"] + item["negative"]}

    calls = _run(recording_encoder, fixture_suite, name)
    query_calls = [instr for texts, instr in calls if set(texts) <= queries]
    document_calls = [instr for texts, instr in calls if set(texts) <= documents]
    assert query_calls == [entry.instruction]
    assert document_calls and all(instr is None for instr in document_calls)
    encoded = {text for texts, _ in calls for text in texts}
    assert encoded == queries | documents  # nothing encoded that is neither


@pytest.mark.parametrize("name", ["FixtureSTS", "FixtureClassification", "FixtureClustering",
                                  "FixturePairClassification"])
def test_symmetric_tasks_give_every_text_the_instruction(fixture_suite, recording_encoder, name):
    entry, _ = _payload(fixture_suite, name)
    calls = _run(recording_encoder, fixture_suite, name)
    assert calls and {instr for _, instr in calls} == {entry.instruction}
    assert sum(len(texts) for texts, _ in calls) > 0


def _metadata(name):
    (task,) = get_tasks([name])
    return task.metadata


def test_instruction_sources_in_order_manifest_table_fallback(hashing_encoder, caplog):
    adapter = MtebAdapter(hashing_encoder, model_name="m", instructions={"SciFact": "from the manifest"})
    with caplog.at_level(logging.INFO, logger="poolattn.evaluation.mteb"):
        assert adapter.instruction_for(_metadata("SciFact"), PromptType.query) == "from the manifest"
        assert adapter.instruction_for(_metadata("NFCorpus"), PromptType.query) == (
            "Given a health question, find medical articles that address it"
        )
        fallback = adapter.instruction_for(_metadata("LegalBenchConsumerContractsQA"), PromptType.query)
        # Asking again (documents, other splits) must not log again.
        adapter.instruction_for(_metadata("NFCorpus"), PromptType.query)
    assert fallback.startswith("Given a query, find the documents relevant to it (")
    sources = [r.getMessage() for r in caplog.records]
    assert len(sources) == 3
    assert "offline suite's manifest" in sources[0] and "MTEB instruction table" in sources[1]
    assert "generic sentence" in sources[2]


def test_documents_get_no_instruction_but_sts_texts_do_whatever_the_prompt_type(hashing_encoder):
    adapter = MtebAdapter(hashing_encoder, model_name="m")
    assert adapter.instruction_for(_metadata("NFCorpus"), PromptType.document) is None
    sts = _metadata("STS12")
    assert adapter.instruction_for(sts, None) == adapter.instruction_for(sts, PromptType.document) is not None


def test_encoder_returning_the_wrong_number_of_rows_is_caught(fixture_suite):
    class Broken:
        def encode(self, texts, **kwargs):
            return np.ones((len(texts) + 1, 4), dtype=np.float32)

    with pytest.raises(ValueError, match=r"Broken.encode returned shape \(13, 4\) for 12 texts"):
        evaluate(Broken(), ["FixtureSTS"], None, suite_dir=fixture_suite, show_progress=False)


def test_non_encoders_are_refused():
    with pytest.raises(TypeError, match="has no encode"):
        MtebAdapter(object(), model_name="x")
