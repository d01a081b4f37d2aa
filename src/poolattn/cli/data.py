"""`poolattn data build [--out DIR] [--work DIR] [--check]`: rebuild the bundled data from packages."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from poolattn import databuild
from poolattn.databuild.build import SOURCE_LOADERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="download the source packages and write the training set, suite and card")
    build.add_argument("--out", type=Path, default=None,
                       help="output folder (default: the package's resources folder)")
    build.add_argument("--work", type=Path, default=None,
                       help="download cache (default: $POOLATTN_CACHE/databuild or ~/.cache/poolattn/databuild)")
    build.add_argument("--check", action="store_true",
                       help="rebuild into a temporary folder and list the artifacts that differ from --out")
    build.add_argument("--sources", nargs="+", choices=list(SOURCE_LOADERS), default=None, metavar="SOURCE",
                       help=f"build only these sources (use a scratch --out): {', '.join(SOURCE_LOADERS)}")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")


def _print_summary(summary: dict, out: Path) -> None:
    training = summary["training"]
    print(f"wrote {out}")
    print(f"training: {training['records']:,} triples " +
          ", ".join(f"{s} {v['triples']:,}" for s, v in training["by_source"].items()))
    rows = [("task", "category", "texts", "~tokens")]
    rows += [(t["name"], t["category"], f"{t['counts']['texts']:,}", f"{t['counts']['approx_tokens']:,}")
             for t in summary["tasks"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def run(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else databuild.default_out_dir()
    progress = not args.no_progress
    if not args.check:
        _print_summary(databuild.build(out, args.work, sources=args.sources, progress=progress), out)
        return 0
    with tempfile.TemporaryDirectory(prefix="poolattn-data-check-") as tmp:
        databuild.build(Path(tmp), args.work, sources=args.sources, progress=progress)
        differences = databuild.check(out, Path(tmp))
    if differences:
        print(f"{len(differences)} artifact(s) differ from {out}:")
        for line in differences:
            print(f"  {line}")
        print("run `poolattn data build` to update them (and review the diff of DATA_CARD.md)")
        return 1
    print(f"all artifacts in {out} match a fresh build")
    return 0
