"""`poolattn export MODEL_DIR OUT --format sentence-transformers`: a folder other libraries load directly."""

from __future__ import annotations

import argparse
from pathlib import Path

from poolattn.cli.common import FOLDER_BACKBONE, add_loading_arguments

FORMATS = ("sentence-transformers",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a saved poolattn model folder")
    parser.add_argument("out", type=Path, metavar="OUT", help="a new (or empty) folder for the export")
    parser.add_argument("--format", choices=FORMATS, default="sentence-transformers",
                        help="what to export to (default: %(default)s)")
    parser.add_argument("--instruction", default=None, metavar="TEXT",
                        help="the instruction saved as the 'query' prompt (default: a web-search retrieval one)")
    add_loading_arguments(parser, backbone_help=FOLDER_BACKBONE)


def run(args: argparse.Namespace) -> int:
    # lazy: sentence-transformers and torch (~13 s to import), see the cli package docstring
    from poolattn.model.export import DEFAULT_INSTRUCTION, export_sentence_transformers, needs_trust_remote_code
    from poolattn.model import Embedder

    model = Embedder.load(args.model_dir, device="cpu", dtype="float32", backbone=args.backbone,
                          trust_remote_code=args.trust_remote_code)
    out = export_sentence_transformers(model, args.out, instruction=args.instruction or DEFAULT_INSTRUCTION,
                                       source=args.model_dir)
    if needs_trust_remote_code(model.config.pooling.name):
        how = (f"SentenceTransformer({str(out)!r}, trust_remote_code=True)  # imports poolattn.model.st_module."
               "PoolattnModule from the installed poolattn package")
    else:
        how = f"SentenceTransformer({str(out)!r})"
    print(f"exported {model.config.pooling.name} pooling, {model.config.attention} attention to {out}\nload: {how}")
    return 0
