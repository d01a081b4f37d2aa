"""The study's training and evaluations, run in child processes instead of the process that plans them.

Why: training leaves a process's C heap (glibc malloc's main arena) large and cut into pieces, and every later
allocation searches it. Measured on SmolLM2-135M, design 4 (LoRA on all 30 layers, bfloat16, 2-core Intel Xeon
with AMX): after 3 training steps in the same process the arena held 8.8 GB free in about 39,000 chunks, each
`torch.empty` took 29 us instead of 2, and encoding ran at 17.9 ms a text against 12-13 before; after a whole
40-step run the study's evaluation of that model took 291 s, and 153 s in a fresh process (same scores).
`malloc_trim` and a fixed mmap threshold did not help, nor did encoding on another thread (20.4 ms: its arena is
no better); training on another thread left the main heap fast but trained 1.4x slower. Training is slowed the
same way by other designs' training before it, though not by its own: 4-step runs of design 4 in a row took 36, 30
and 28 s, while designs 4-5 trained after the causal designs took 535-555 s for 40 steps against 418 s for design 4
after only the baseline's evaluation.

So `poolattn study` keeps two children:
- one for every evaluation, started once, so the frozen-prefix cache (backbone/prefix.py) it fills on one run's
  evaluation serves the next run's;
- one for training, replaced whenever the attention mode changes: the runs of one mode (designs 1-3, or 4-5) are
  exactly those whose frozen layers the cache can share, so a child per mode loses no cache hit and no design
  trains in a heap another mode has cut up.

A child is started with `spawn` (a clean interpreter, not a copy of the parent's heap), takes the parent's logging
setup and torch thread count, and writes its logs and progress bars to the same terminal. An error raised in a
child is raised in the parent as it was raised there; a child that dies (killed for memory, say) is reported with
the run it was working on.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

logger = logging.getLogger(__name__)


def _logging_setup() -> dict[str, Any]:
    """The parent's root level, message format and per-logger levels, for the child to copy."""
    root = logging.getLogger()
    formatter = next((h.formatter for h in root.handlers if h.formatter is not None), None)
    levels = {name: log.level for name, log in logging.root.manager.loggerDict.items()
              if isinstance(log, logging.Logger) and log.level != logging.NOTSET}
    return {"level": root.level, "format": getattr(formatter, "_fmt", None),
            "datefmt": getattr(formatter, "datefmt", None), "levels": levels}


def _start_child(setup: dict[str, Any], threads: int) -> None:
    """Runs first in the child: the parent's logging and torch thread count."""
    if setup["format"] is not None:
        logging.basicConfig(level=setup["level"], format=setup["format"], datefmt=setup["datefmt"])
    logging.getLogger().setLevel(setup["level"])
    for name, level in setup["levels"].items():
        logging.getLogger(name).setLevel(level)
    torch.set_num_threads(threads)


class SameProcess:
    """Calls `function(*args)` here: `ChildProcess`'s interface, for `run_study(child_processes=False)`."""

    def __enter__(self) -> SameProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(self, function: Callable[..., Any], *args: Any, what: str = "a run") -> Any:
        return function(*args)

    def close(self) -> None:
        pass


class ChildProcess:
    """Calls `function(*args)` in one child process, started on the first call and kept until `close` (a later
    call starts a new one).

    `doing` says what the child does, for the log and for the error naming a dead child ("evaluating",
    "training"); `then` says in that error what to do next (the study's default: run it again, it resumes). Use
    as a context manager. `function` and its arguments must be picklable (a module-level function).
    """

    def __init__(self, doing: str, then: str = "run the study again to resume from this run") -> None:
        self.doing = doing
        self.then = then
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, function: Callable[..., Any], *args: Any, what: str = "a run") -> Any:
        if self._pool is None:
            logger.info("a new child process for %s (study/processes.py says why)", self.doing)
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_child,
                                             initargs=(_logging_setup(), torch.get_num_threads()))
        try:
            return self._pool.submit(function, *args).result()
        except BrokenProcessPool as exc:
            self._pool = None  # a later call starts a new child
            raise RuntimeError(
                f"the child process {self.doing} {what} died before it finished (killed for memory, or by a "
                f"signal); {self.then}, and watch memory if it happens again"
            ) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
