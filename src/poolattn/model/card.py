"""The model card: a README.md in every saved model folder saying what the model is, how it was made and how
to load it.

The card is rendered from what the folder itself holds (poolattn.json, and where a training run or an
evaluation left them: run_config.yaml, train_summary.json, results.json), so writing it again after training or
evaluation always gives the whole story. A README.md that poolattn did not write is never replaced.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from poolattn.designs import get_design
from poolattn.errors import InputNotFoundError

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
MARKER = "<!-- poolattn model card: rewritten when the model is saved, trained or evaluated -->"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _training_section(folder: Path) -> list[str]:
    summary = _read_json(folder / "train_summary.json")
    run_config = folder / "run_config.yaml"
    config = yaml.safe_load(run_config.read_text(encoding="utf-8")) if run_config.is_file() else None
    if summary is None and config is None:
        return ["## Training", "", "No training record in this folder (an untrained or externally trained model).", ""]
    lines = ["## Training", "", "| | |", "| --- | --- |"]
    if config:
        data = config.get("data", {})
        name = data.get("dataset_file_path") or data.get("dataset_name") or "poolattn's bundled training set"
        train, loss = config.get("train", {}), config.get("loss", {})
        lines += [f"| data | {name} |", f"| learning rate | {train.get('learning_rate')} |",
                  f"| loss | {loss.get('name')}, scale {loss.get('scale')} ({loss.get('contrastive_batch')} batch) |"]
    if summary:
        final = summary.get("final_loss")
        lines += [f"| records | {summary.get('records')} |", f"| steps | {summary.get('steps')} |",
                  f"| contrastive batch | {summary.get('contrastive_batch')} texts per softmax |",
                  f"| final loss | {final:.4f} |" if isinstance(final, float) else f"| final loss | {final} |"]
        holdout = summary.get("holdout")
        if holdout:
            before, after = holdout["before"], holdout["after"]
            lines += [f"| held-out recall@1 | {before['recall@1']:.3f} before, {after['recall@1']:.3f} after |",
                      f"| held-out MRR | {before['mrr']:.3f} before, {after['mrr']:.3f} after |"]
    return lines + [""]


def _evaluation_section(folder: Path) -> list[str]:
    # results in the folder or a subfolder (`poolattn evaluate --output MODEL/eval`), and a study run's eval/
    # folder next to its model/ folder
    candidates = [folder / "results.json", *sorted(folder.glob("*/results.json"))]
    if folder.name == "model":
        candidates.append(folder.parent / "eval" / "results.json")
    found = [(path, _read_json(path)) for path in candidates]
    found = [(path, results) for path, results in found if isinstance(results, dict) and results]
    if not found:
        return []
    lines = ["## Evaluation", ""]
    for path, results in found:
        where = path.relative_to(folder) if path.is_relative_to(folder) else Path("..") / path.relative_to(folder.parent)
        lines += [f"`{where}`:", "", "| task | category | main score |", "| --- | --- | ---: |"]
        for task, result in results.items():
            if isinstance(result, dict) and "main_score" in result:
                lines.append(f"| {task} | {result.get('category', '')} | {result['main_score']:.4f} |")
        lines.append("")
    return lines


def render(folder: Path, meta: dict[str, Any], *, export: Path | None = None) -> str:
    """The card's Markdown for a saved model folder whose poolattn.json holds `meta`.

    With `export`, the card is for that sentence-transformers export of the folder's model.
    """
    model = meta["model"]
    pooling, attention, lora = model["pooling"]["name"], model["attention"], model["lora"]
    design = get_design(f"{pooling}-{attention}")
    lora_text = (f"r {lora['r']}, alpha {lora['alpha']}, dropout {lora['dropout']}, on {', '.join(lora['target_modules'])}"
                 + (f", layers {lora['layers']}" if lora.get("layers") else ""))
    if meta.get("merged"):
        lora_text += " (merged into the saved backbone)"
    elif not lora["enabled"]:
        lora_text = "none"
    trust = "" if pooling == "eos" else ", trust_remote_code=True"
    lines = [
        MARKER, "",
        f"# poolattn embedding model: {design.label}",
        "",
        "A text embedding model made by poolattn from a decoder LLM (LoRA + contrastive learning), pooled into one "
        "unit-norm vector per text.",
        "",
        "| | |",
        "| --- | --- |",
        f"| design | {design.label} |",
        f"| backbone | {model['backbone']} |",
        f"| pooling | {pooling} (args: {json.dumps(meta['pooler']['args'])}) |",
        f"| attention | {attention} |",
        f"| LoRA | {lora_text} |",
        f"| embedding dimension | {meta.get('embedding_dim')} |",
        f"| max length | {model['max_length']} tokens, EOS included (the training length; choose another at "
        "load time with `max_length=`) |",
        f"| instruction template | `{json.dumps(model['instruction_template'])[1:-1]}` "
        f"(instruction tokens {'left out of' if model['exclude_instruction'] else 'included in'} the pooling) |",
        f"| poolattn version | {meta.get('poolattn_version')} |",
        "",
        *_training_section(folder),
        *_evaluation_section(folder),
        "## Use",
        "",
        "```python",
        "from poolattn import Embedder",
        "",
        f'model = Embedder.load("{folder.name}")',
        'queries = model.encode_query(["how do clouds form"], instruction="Given a question, retrieve passages '
        'that answer it")',
        'documents = model.encode_document(["Clouds form when water vapour condenses."])',
        "print(model.similarity(queries, documents))",
        "```",
        "",
        "With sentence-transformers, export first "
        f"(`poolattn export {folder.name} {folder.name}-st --format sentence-transformers`), then:",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("{folder.name}-st"{trust})',
        "```",
        "",
    ]
    if export is not None:
        at = lines.index("## Use")
        lines[at:] = [
            "## Use", "",
            f"This folder is a sentence-transformers export of `{folder.name}` (`poolattn export`): the same "
            "embeddings as `Embedder.load` gives, with the query instruction saved as the prompt named \"query\".",
            "", "```python", "from sentence_transformers import SentenceTransformer", "",
            f'model = SentenceTransformer("{export.name}"{trust})',
            'queries = model.encode_query(["how do clouds form"])',
            'documents = model.encode_document(["Clouds form when water vapour condenses."])',
            "```", "",
        ]
    if trust:
        lines += ["`trust_remote_code=True` lets sentence-transformers import the pooling module from the installed "
                  "poolattn package (`poolattn.model.st_module.PoolattnModule`); the folder holds no code.", ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path) -> Path | None:
    """(Re)write README.md in a saved model folder; returns its path, or None when a foreign README is there."""
    folder = Path(folder)
    meta = _read_json(folder / "poolattn.json")
    if meta is None:
        raise InputNotFoundError(f"{str(folder)!r} holds no poolattn.json; write the model with Embedder.save first")
    card = folder / CARD_FILE
    if card.is_file() and not card.read_text(encoding="utf-8", errors="replace").startswith(MARKER):
        logger.warning("%s was not written by poolattn; leaving it as it is (no model card written)", card)
        return None
    card.write_text(render(folder, meta), encoding="utf-8")
    return card
