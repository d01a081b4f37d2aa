"""`poolattn encode`: texts from a .txt (one per line) or .jsonl file -> a (N, D) float32 .npy file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_texts(path: Path) -> tuple[list[str], list[str | None]]:
    """Texts and per-text instructions. .jsonl lines are {"text": ..., "instruction"?: ...} or a JSON string.

    Raises:
        ValueError: unreadable line or missing "text" field (names file and line).
    """
    if not path.is_file():
        raise FileNotFoundError(f"--input {str(path)!r} does not exist")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline is not an empty text
    if path.suffix == ".txt":
        return lines, [None] * len(lines)
    if path.suffix != ".jsonl":
        raise ValueError(f"--input {str(path)!r}: use a .txt file (one text per line) or .jsonl")
    texts, instructions = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f'{path}:{number}: expected {{"text": "..."}} or a JSON string, got {line[:80]!r}')
        texts.append(record["text"])
        instructions.append(record.get("instruction"))
    return texts, instructions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="saved model folder, or a design (1-5 or a name) to use untrained")
    parser.add_argument("--input", required=True, type=Path, help=".txt (one text per line) or .jsonl")
    parser.add_argument("--output", required=True, type=Path, help="where to write the .npy embeddings")
    parser.add_argument("--instruction", default=None, help="instruction for every text (E5 query form)")
    parser.add_argument("--backbone", default=None, help="backbone for a design given by number (default smollm2-135m)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                        help="weights dtype (default auto: whichever of float32 and bfloat16 this machine encodes "
                             "faster, measured once and cached)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from poolattn.model import resolve_model

    texts, instructions = read_texts(args.input)
    if args.instruction is not None:
        instructions = [args.instruction] * len(texts)
    model = resolve_model(args.model, backbone=args.backbone, dtype=args.dtype)
    embeddings = model.encode(
        texts, instruction=instructions, batch_size=args.batch_size, show_progress=not args.no_progress
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}")
    return 0
