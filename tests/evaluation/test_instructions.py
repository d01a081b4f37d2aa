"""The MTEB instruction table: coverage of the paper's tasks, categories that agree with mteb, own wording."""

from __future__ import annotations

import pytest

from poolattn.evaluation.instructions import (
    CATEGORIES,
    MTEB_INSTRUCTIONS,
    category_from_mteb_type,
    fallback_instruction,
)

PAPER_TASKS = {
    "retrieval": [
        "ArguAna", "ClimateFEVER", "DBPedia", "FEVER", "FiQA2018", "HotpotQA", "MSMARCO", "NFCorpus", "NQ",
        "QuoraRetrieval", "SCIDOCS", "SciFact", "Touche2020", "TRECCOVID",
        *[f"CQADupstack{f}Retrieval" for f in ("Android", "English", "Gaming", "Gis", "Mathematica", "Physics",
                                              "Programmers", "Stats", "Tex", "Unix", "Webmasters", "Wordpress")],
    ],
    "sts": ["BIOSSES", "SICK-R", "STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark"],
    "pair_classification": ["SprintDuplicateQuestions", "TwitterSemEval2015", "TwitterURLCorpus"],
    "clustering": [
        "ArxivClusteringP2P", "ArxivClusteringS2S", "BiorxivClusteringP2P", "BiorxivClusteringS2S",
        "MedrxivClusteringP2P", "MedrxivClusteringS2S", "RedditClustering", "RedditClusteringP2P",
        "StackExchangeClustering", "StackExchangeClusteringP2P", "TwentyNewsgroupsClustering",
    ],
    "reranking": ["AskUbuntuDupQuestions", "MindSmallReranking", "SciDocsRR", "StackOverflowDupQuestions"],
    "summarization": ["SummEval"],
    "classification": [
        "AmazonCounterfactualClassification", "AmazonPolarityClassification", "AmazonReviewsClassification",
        "Banking77Classification", "EmotionClassification", "ImdbClassification", "MassiveIntentClassification",
        "MassiveScenarioClassification", "MTOPDomainClassification", "MTOPIntentClassification",
        "ToxicConversationsClassification", "TweetSentimentExtractionClassification",
    ],
}


def test_table_covers_every_paper_task_with_its_category():
    expected = {name: category for category, names in PAPER_TASKS.items() for name in names}
    assert {name: entry.category for name, entry in MTEB_INSTRUCTIONS.items()} == expected


def test_categories_agree_with_mteb_task_types():
    from mteb.get_tasks import _TASKS_REGISTRY

    for name, entry in MTEB_INSTRUCTIONS.items():
        assert name in _TASKS_REGISTRY, f"{name} is not an MTEB task name"
        assert category_from_mteb_type(_TASKS_REGISTRY[name].metadata.type) == entry.category, name


def test_instructions_are_one_short_sentence_in_our_own_words():
    from mteb.get_tasks import _TASKS_REGISTRY

    for name, entry in MTEB_INSTRUCTIONS.items():
        text = entry.instruction
        assert 10 < len(text) <= 120, (name, text)
        assert "\n" not in text and not text.endswith(".") and text.count(". ") == 0, (name, text)
        prompt = _TASKS_REGISTRY[name].metadata.prompt
        prompts = prompt.values() if isinstance(prompt, dict) else [prompt]
        assert text not in prompts, f"{name}: copied mteb's prompt instead of writing our own"


def test_unknown_mteb_type_is_refused_with_the_allowed_list():
    with pytest.raises(ValueError, match="BitextMining.*'Classification'"):
        category_from_mteb_type("BitextMining")


def test_fallback_instruction_uses_category_and_first_sentence_of_description():
    text = fallback_instruction("retrieval", "Ranking of related papers. Built from SPECTER data.")
    assert text == "Given a query, find the documents relevant to it (Ranking of related papers)"
    assert fallback_instruction("sts", "") == "Given a text, find texts with the same meaning"
    assert set(CATEGORIES) >= {"retrieval", "sts"}
    with pytest.raises(ValueError, match="unknown category 'bitext'"):
        fallback_instruction("bitext", "x")
