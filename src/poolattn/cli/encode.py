"""`poolattn encode`: texts from a .txt (one per line) or .jsonl file -> a (N, D) float32 .npy file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from poolattn.cli.common import add_loading_arguments
from poolattn.errors import InputError, InputNotFoundError, OutputPathError


def _decoded_lines(path: Path) -> list[str]:
    """The file's lines as UTF-8 text (a leading byte-order mark dropped); the final newline ends no text."""
    raw_lines = path.read_bytes().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the file's final newline is not an empty text
    lines, offset = [], 0
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8").removesuffix("\r"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {offset + exc.start} "
                "of the file); save the file as UTF-8"
            ) from None
        offset += len(raw) + 1
    return lines


def read_texts(path: Path) -> tuple[list[str], list[str | None]]:
    """Texts and per-text instructions. .jsonl lines are {"text": ..., "instruction"?: ...} or a JSON string.

    Raises:
        ValueError: unreadable line, not UTF-8, or missing "text" field (names file and line); no text at all.
    """
    if not path.is_file():
        raise InputNotFoundError(f"--input {str(path)!r} does not exist")
    if path.suffix not in (".txt", ".jsonl"):
        raise InputError(f"--input {str(path)!r}: use a .txt file (one text per line) or .jsonl")
    lines = _decoded_lines(path)
    if path.suffix == ".txt":
        texts, instructions = lines, [None] * len(lines)
    else:
        texts, instructions = [], []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if isinstance(record, str):
                record = {"text": record}
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError(f'{path}:{number}: expected {{"text": "..."}} or a JSON string, got {line[:80]!r}')
            texts.append(record["text"])
            instructions.append(record.get("instruction"))
    if not texts:
        raise InputError(f"--input {str(path)!r} holds no texts; give one text per line (.txt) or JSON lines")
    return texts, instructions


def output_path(raw: str) -> Path:
    """The .npy file `--output` names (np.save adds .npy when missing), checked before any model is loaded.

    Raises:
        OutputPathError: a folder, or a place that cannot be written (the message names it).
    """
    path = Path(raw).expanduser()
    if raw.endswith(("/", "\\")) or path.is_dir():
        raise OutputPathError(f"--output {raw!r} is a folder; give a file name such as {str(path / 'embeddings.npy')!r}")
    if path.suffix != ".npy":
        path = path.with_name(path.name + ".npy")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputPathError(f"--output {raw!r}: cannot write {str(path)!r} ({str(existing)!r} is not a writable "
                              "folder); choose another path")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="PATH|DESIGN",
                        help="saved model folder, or a design (1-5 or a name) to use untrained")
    parser.add_argument("--input", required=True, type=Path, metavar="PATH",
                        help=".txt (one text per line) or .jsonl")
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="the .npy file to write (.npy is added when missing)")
    parser.add_argument("--instruction", default=None, metavar="TEXT",
                        help="instruction for every text (E5 query form; default: none, or the .jsonl's own)")
    add_loading_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts per forward pass (default: 32)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                        help="weights dtype (default: auto, whichever of float32 and bfloat16 this machine encodes "
                        "faster, measured once and cached)")
    parser.add_argument("--max_length", "--max-length", type=int, default=None, metavar="N",
                        help="tokens per text, EOS included (default: the length the model was trained with; at "
                        "most the backbone's context)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    # lazy: torch (~3 s to import), see the cli package docstring
    from poolattn.model import resolve_model

    texts, instructions = read_texts(args.input)
    output = output_path(str(args.output))  # before the model loads: a bad path fails in a second, not an hour
    empty = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        print(f"note: {len(empty)} of {len(texts)} texts are empty or whitespace only (texts {shown}); they are "
              "encoded as empty texts", file=sys.stderr)
    if args.instruction is not None:
        instructions = [args.instruction] * len(texts)
    model = resolve_model(args.model, backbone=args.backbone, dtype=args.dtype, max_length=args.max_length,
                          trust_remote_code=args.trust_remote_code)
    embeddings = model.encode(
        texts, instruction=instructions, batch_size=args.batch_size, show_progress=not args.no_progress
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {output}")
    return 0
