"""Evaluation through MTEB: the offline suite as mteb tasks, one encoder adapter, and `evaluate()`.

    from poolattn.evaluation import evaluate
    results = evaluate(model, ["suite"], Path("runs/eval"))   # {task: {"main_score", "category", ...}}

Names are imported lazily: `import mteb` takes seconds, and light users (the instruction table, the CLI's help)
should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "poolattn.evaluation.run",
    "HubUnreachableError": "poolattn.evaluation.run",
    "get_tasks": "poolattn.evaluation.tasks",
    "list_offline_tasks": "poolattn.evaluation.tasks",
    "UnknownTaskError": "poolattn.evaluation.tasks",
    "MtebAdapter": "poolattn.evaluation.mteb",
    "to_mteb": "poolattn.evaluation.mteb",
    "TextEncoder": "poolattn.evaluation.mteb",
    "RandomEncoder": "poolattn.evaluation.baselines",
    "SentenceTransformerEncoder": "poolattn.evaluation.baselines",
    "load_baseline": "poolattn.evaluation.baselines",
    "MTEB_INSTRUCTIONS": "poolattn.evaluation.instructions",
    "CATEGORIES": "poolattn.evaluation.instructions",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'poolattn.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
