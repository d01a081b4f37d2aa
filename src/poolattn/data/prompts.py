"""Task names -> instructions for training records that carry a `task` instead of an `instruction`.

Instructions follow the E5-Mistral form: one sentence saying what to retrieve for what. A record's own
`instruction` always wins; an unknown task is an error that lists the known ones.
"""

from __future__ import annotations

import difflib

TASK_INSTRUCTIONS: dict[str, str] = {
    "msmarco": "Given a web search query, retrieve relevant passages that answer the query",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question",
    "hotpotqa": "Given a multi-hop question, retrieve documents that can help answer the question",
    "fever": "Given a claim, retrieve documents that support or refute the claim",
    "triviaqa": "Retrieve Wikipedia passages that answer the question",
    "squad": "Retrieve Wikipedia passages that answer the question",
    "quora": "Given a question, retrieve questions that are semantically equivalent to the given question",
    "nli": "Given a premise, retrieve a hypothesis that is entailed by the premise",
    "sts": "Retrieve semantically similar text",
    "eli5": "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum",
    "fiqa": "Given a financial question, retrieve user replies that best answer the question",
}


def task_instruction(task: str) -> str:
    """The instruction for `task` (case-insensitive).

    Raises:
        KeyError: unknown task, with close matches and the full list.
    """
    key = task.strip().lower()
    if key in TASK_INSTRUCTIONS:
        return TASK_INSTRUCTIONS[key]
    close = difflib.get_close_matches(key, TASK_INSTRUCTIONS, n=3)
    hint = f" (did you mean {close}?)" if close else ""
    raise KeyError(
        f"unknown task {task!r}{hint}; known tasks: {sorted(TASK_INSTRUCTIONS)}; or give the record an 'instruction'"
    )
