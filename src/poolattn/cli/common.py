"""Flags shared by the commands that load a saved model folder (encode, evaluate, export)."""

from __future__ import annotations

import argparse

DESIGN_OR_FOLDER_BACKBONE = (
    "backbone for a design given by number (default: smollm2-135m); for a saved folder whose poolattn.json names a "
    "local backbone path, that path (loaded only when given here)"
)
FOLDER_BACKBONE = (
    "for a folder whose poolattn.json names a local backbone path, that path (loaded only when given here; "
    "default: none)"
)


def add_loading_arguments(parser: argparse.ArgumentParser, *, backbone_help: str = DESIGN_OR_FOLDER_BACKBONE) -> None:
    """`--backbone` and `--trust_remote_code`: what loading a model folder may do is the caller's choice alone."""
    parser.add_argument("--backbone", default=None, metavar="NAME", help=backbone_help)
    parser.add_argument("--trust_remote_code", action="store_true",
                        help="let Python code shipped with the model run (off by default; only for sources you trust)")
