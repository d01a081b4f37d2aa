"""Task instructions and task categories for evaluation.

The paper evaluates instruction-following embedders the E5-mistral way: a query is prefixed with a one-sentence
description of the task ("Instruct: {instruction}\\nQuery: {text}"; the model does the formatting). Which texts get
the instruction depends on the category: in retrieval and reranking only the queries do, so one document index
serves every query; in the symmetric categories (STS, classification, clustering, pair classification,
summarization) every text does, since both sides of a comparison play the same role.

The table below covers MTEB's English tasks that the paper reports. The sentences are ours, written from what each
task asks; they are facts about the task and are kept short. This module imports nothing heavy, so the CLI can list
tasks without loading mteb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES = (
    "retrieval",
    "reranking",
    "sts",
    "classification",
    "clustering",
    "pair_classification",
    "summarization",
)
"""Every category a result can carry, in the order reports list them."""

QUERY_ONLY_CATEGORIES = frozenset({"retrieval", "reranking"})
"""Asymmetric categories: the instruction goes on queries, never on documents."""

_MTEB_TYPE_TO_CATEGORY = {
    "Retrieval": "retrieval",
    "InstructionRetrieval": "retrieval",
    "Reranking": "reranking",
    "InstructionReranking": "reranking",
    "STS": "sts",
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "Clustering": "clustering",
    "PairClassification": "pair_classification",
    "Summarization": "summarization",
}


@dataclass(frozen=True)
class TaskInstruction:
    """What a task asks for, in one sentence, and the category it is scored in."""

    category: str
    instruction: str


def _table() -> dict[str, TaskInstruction]:
    def add(category: str, instruction: str, *names: str) -> None:
        for name in names:
            table[name] = TaskInstruction(category, instruction)

    table: dict[str, TaskInstruction] = {}

    # Retrieval: the instruction says what a query is and what counts as a hit.
    add("retrieval", "Given an argument, find the counter-argument that rebuts it", "ArguAna")
    add("retrieval", "Given a claim about the climate, find passages that confirm or contradict it", "ClimateFEVER")
    add("retrieval", "Given a search query, find the encyclopedia entity summaries it refers to", "DBPedia")
    add("retrieval", "Given a claim, find Wikipedia passages that confirm or contradict it", "FEVER")
    add("retrieval", "Given a question about personal finance, find forum answers that address it", "FiQA2018")
    add("retrieval", "Given a question that needs several facts, find Wikipedia passages that supply them", "HotpotQA")
    add("retrieval", "Given a web search query, find passages that answer it", "MSMARCO")
    add("retrieval", "Given a health question, find medical articles that address it", "NFCorpus")
    add("retrieval", "Given a question, find the Wikipedia passage that answers it", "NQ")
    add("retrieval", "Given a question, find other questions that ask the same thing", "QuoraRetrieval")
    add("retrieval", "Given the title of a scientific paper, find abstracts of papers it cites", "SCIDOCS")
    add("retrieval", "Given a scientific claim, find research abstracts that confirm or contradict it", "SciFact")
    add("retrieval", "Given a debate question, find arguments that take a position on it", "Touche2020")
    add("retrieval", "Given a question about COVID-19, find research articles that answer it", "TRECCOVID")
    cqadupstack_forums = {
        "Android": "Android",
        "English": "English Language & Usage",
        "Gaming": "Arqade",
        "Gis": "GIS",
        "Mathematica": "Mathematica",
        "Physics": "Physics",
        "Programmers": "Software Engineering",
        "Stats": "Cross Validated",
        "Tex": "TeX - LaTeX",
        "Unix": "Unix & Linux",
        "Webmasters": "Webmasters",
        "Wordpress": "WordPress Development",
    }
    for key, forum in cqadupstack_forums.items():
        add(
            "retrieval",
            f"Given a question from the {forum} Stack Exchange site, find posts asking the same question",
            f"CQADupstack{key}Retrieval",
        )

    # Reranking: scored like retrieval over a short candidate list per query.
    add("reranking", "Given a question from the AskUbuntu forum, find questions that duplicate it", "AskUbuntuDupQuestions")
    add("reranking", "Given news a reader has clicked, find the articles they will read next", "MindSmallReranking")
    add("reranking", "Given the title of a scientific paper, find titles of related papers", "SciDocsRR")
    add("reranking", "Given a StackOverflow question, find questions that duplicate it", "StackOverflowDupQuestions")

    # STS: symmetric, so the sentence describes what "close" means for both sides.
    add("sts", "Given a sentence, find sentences with the same meaning",
        "SICK-R", "STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark")
    add("sts", "Given a sentence from biomedical literature, find sentences with the same meaning", "BIOSSES")

    # Pair classification: is the pair a duplicate / paraphrase?
    add("pair_classification", "Given a question from the Sprint support forum, find questions that duplicate it",
        "SprintDuplicateQuestions")
    add("pair_classification", "Given a tweet, find tweets that paraphrase it", "TwitterSemEval2015")
    add("pair_classification", "Given a tweet, find tweets that say the same thing", "TwitterURLCorpus")

    # Clustering: name the grouping the clusters should recover.
    add("clustering", "Given the title and abstract of an arXiv paper, name its subject areas", "ArxivClusteringP2P")
    add("clustering", "Given the title of an arXiv paper, name its subject areas", "ArxivClusteringS2S")
    add("clustering", "Given the title and abstract of a bioRxiv preprint, name its subject area", "BiorxivClusteringP2P")
    add("clustering", "Given the title of a bioRxiv preprint, name its subject area", "BiorxivClusteringS2S")
    add("clustering", "Given the title and abstract of a medRxiv preprint, name its subject area", "MedrxivClusteringP2P")
    add("clustering", "Given the title of a medRxiv preprint, name its subject area", "MedrxivClusteringS2S")
    add("clustering", "Given the title of a Reddit post, name the community it was posted in", "RedditClustering")
    add("clustering", "Given the title and text of a Reddit post, name the community it was posted in",
        "RedditClusteringP2P")
    add("clustering", "Given the title of a Stack Exchange question, name the site it was asked on",
        "StackExchangeClustering")
    add("clustering", "Given a Stack Exchange post, name the site it was asked on", "StackExchangeClusteringP2P")
    add("clustering", "Given a newsgroup post, name its topic", "TwentyNewsgroupsClustering")

    # Classification: a linear probe is trained on the embeddings; the instruction names the label set.
    add("classification", "Given an Amazon customer review, decide whether it describes a counterfactual",
        "AmazonCounterfactualClassification")
    add("classification", "Given an Amazon review, decide whether it is positive or negative",
        "AmazonPolarityClassification")
    add("classification", "Given an Amazon review, predict its star rating", "AmazonReviewsClassification")
    add("classification", "Given a customer message to an online bank, identify what the customer wants",
        "Banking77Classification")
    add("classification", "Given a tweet, name the emotion it expresses: anger, fear, joy, love, sadness or surprise",
        "EmotionClassification")
    add("classification", "Given a movie review, decide whether it is positive or negative", "ImdbClassification")
    add("classification", "Given a request to a voice assistant, identify the user's intent",
        "MassiveIntentClassification")
    add("classification", "Given a request to a voice assistant, identify the scenario it belongs to",
        "MassiveScenarioClassification")
    add("classification", "Given a request to a task-oriented assistant, identify its domain",
        "MTOPDomainClassification")
    add("classification", "Given a request to a task-oriented assistant, identify its intent",
        "MTOPIntentClassification")
    add("classification", "Given a comment from an online discussion, decide whether it is toxic",
        "ToxicConversationsClassification")
    add("classification", "Given a tweet, decide whether its sentiment is positive, negative or neutral",
        "TweetSentimentExtractionClassification")

    # Summarization: machine summaries are compared with human ones.
    add("summarization", "Given a news summary, find summaries with the same content", "SummEval")
    return table


MTEB_INSTRUCTIONS: dict[str, TaskInstruction] = _table()
"""MTEB task name -> (category, instruction) for the English tasks the paper evaluated."""

_FALLBACK_LEAD = {
    "retrieval": "Given a query, find the documents relevant to it",
    "reranking": "Given a query, find the documents relevant to it",
    "sts": "Given a text, find texts with the same meaning",
    "classification": "Given a text, identify its category",
    "clustering": "Given a text, identify its topic",
    "pair_classification": "Given a text, find texts with the same meaning",
    "summarization": "Given a summary, find summaries with the same content",
}


def category_from_mteb_type(task_type: str) -> str:
    """Our category name for an mteb `TaskMetadata.type` such as "PairClassification".

    Raises:
        ValueError: for task types whose instruction policy we have not decided (bitext mining, images, ...).
    """
    try:
        return _MTEB_TYPE_TO_CATEGORY[task_type]
    except KeyError:
        raise ValueError(
            f"unsupported mteb task type {task_type!r}; poolattn evaluates {sorted(_MTEB_TYPE_TO_CATEGORY)}"
        ) from None


def fallback_instruction(category: str, description: str) -> str:
    """A generic one-sentence instruction for a task nobody wrote one for.

    The category fixes the sentence's shape and the first sentence of the task's description says what the data
    is, e.g. "Given a query, find the documents relevant to it (Ranking of related scientific papers)".
    """
    if category not in _FALLBACK_LEAD:
        raise ValueError(f"unknown category {category!r}; choose one of {list(CATEGORIES)}")
    first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0].rstrip(".!? ")
    if len(first) > 160:
        first = first[:157].rstrip() + "..."
    lead = _FALLBACK_LEAD[category]
    return f"{lead} ({first})" if first else lead
