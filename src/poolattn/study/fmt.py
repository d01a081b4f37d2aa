"""The report's formatters: every number, p-value, count and label of report.md and report.html goes through these."""

from __future__ import annotations

import re

DASH = "—"


def score(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def signed(value: float | None, digits: int = 3) -> str:
    """A delta with its sign and a true minus sign ("+0.012", "−0.034"); exactly zero reads unsigned."""
    if value is None:
        return DASH
    return f"{0:.{digits}f}" if value == 0 else f"{value:+.{digits}f}".replace("-", "−")


def sign_tags(value: float | None) -> tuple[str, ...]:
    """A numeric cell's tags: green for a positive delta, red for a negative one."""
    if value is None or value == 0:
        return ("num",)
    return ("num", "pos" if value > 0 else "neg")


def pvalue(p: float | None, *, bound: bool = False) -> str:
    """A p-value to 3 decimals; `bound`: p is an upper bound (no bootstrap replicate crossed zero), "≤ 0.024"."""
    if p is None:
        return DASH
    if bound:
        return f"≤ {p:.3f}" if p >= 0.001 else f"≤ {p:.4f}"
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def count(n: int | None) -> str:
    if n is None:
        return DASH
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def listing(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)



def _camel_words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+|[^A-Za-z0-9]+", name)


def _shared_words(word_lists: list[list[str]], *, from_end: bool) -> int:
    """How many leading (or trailing) words all lists share, always leaving at least one word of each."""
    if len(word_lists) < 2:
        return 0
    shared = 0
    while all(len(w) > shared + 1 for w in word_lists):
        index = -(shared + 1) if from_end else shared
        if len({w[index] for w in word_lists}) != 1:
            break
        shared += 1
    return shared


def short_task_names(all_tasks: list[str], tasks: list[str]) -> tuple[str, str, dict[str, str]]:
    """`tasks` without the CamelCase prefix every task of the study shares and the suffix the category's tasks share.

    Suite names are long and alike ('PoolattnTrecQuestionClassification'); 'TrecQuestion' under a 'Classification'
    heading keeps a seven-task table inside the page. Returns (prefix, suffix, {task: short name}).
    """
    prefix_len = _shared_words([_camel_words(t) for t in all_tasks], from_end=False)
    cut = [_camel_words(t)[prefix_len:] for t in tasks]
    suffix_len = _shared_words(cut, from_end=True)
    prefix = "".join(_camel_words(all_tasks[0])[:prefix_len]) if all_tasks else ""
    suffix = "".join(cut[0][len(cut[0]) - suffix_len:]) if suffix_len else ""
    return prefix, suffix, {t: "".join(w[:len(w) - suffix_len]) for t, w in zip(tasks, cut)}
