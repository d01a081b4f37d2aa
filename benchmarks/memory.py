"""Peak memory of one poolattn training step (design 1), measured in a fresh process per measurement on the CPU.

Why a fresh process: after a step, the allocator keeps freed pages, so a second step in the same process would
look cheaper than it is, and the order of measurements would change the answer. Each worker loads the model and
the optimizer, records the resident set (the baseline), runs exactly one optimizer step, and reports the step's
peak. The step's own cost is `peak - baseline`: the model and optimizer are the same in every measurement, so the
ratio of totals would mostly measure the model. On a GPU, CUDA's allocator statistics do this in process.

Why the worker pins glibc's mmap threshold (MALLOC_MMAP_THRESHOLD_=65536): by default glibc raises that threshold
each time a large block is freed, after which large tensors come from the heap and freed ones stay resident. The
peak RSS of the very same step then depends on allocation history: back to back, a plain 16-record step read
+2.98 GB or +4.90 GB. With a fixed threshold every tensor over 64 KiB is its own mapping, returned on free, so RSS
follows the live tensors (+2.93 GB, within 1 MB over three runs). `--default-malloc` measures without the pin.

Run as a worker: `python -m benchmarks.memory '<json spec>'` prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import MemoryReading, peak_memory
from benchmarks.contenders import Backbone, adamw, build_embedder, poolattn_step, poolattn_train_step
from benchmarks.data import fit_records, sample_records

REPO = Path(__file__).resolve().parent.parent


@dataclass
class StepSpec:
    """One measurement: `records` per contrastive batch in chunks of `chunk` records (GradCache when smaller)."""

    folder: str
    records: int
    chunk: int
    max_length: int
    lr: float
    scale: float
    attn: str = "eager"
    dtype: str = "bfloat16"


def measure_step(backbone: Backbone, records: int, chunk: int, *, max_length: int, lr: float, scale: float,
                 attn: str, dtype: str) -> MemoryReading:
    """Load design 1 and AdamW, then measure one optimizer step's memory (in this process)."""
    from poolattn.data.collator import TripletCollator

    model = build_embedder(backbone, 1, max_length=max_length, attn=attn, dtype=dtype).train()
    optimizer = adamw(model.parameters(), lr)
    template = model.config.instruction_template
    batch = TripletCollator(model.text_tokenizer)(
        fit_records(sample_records(records, seed=3), model.tokenizer, max_length=max_length, template=template)
    )
    step = poolattn_step(model, chunk=chunk, grad_cache=records > chunk, scale=scale)
    gc.collect()
    time.sleep(0.2)  # let the sampler's first reading land on a quiet process
    with peak_memory(backbone.device) as reading:
        poolattn_train_step(model, step, optimizer, batch)
    return reading[0]


PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def measure_in_subprocess(spec: StepSpec, *, pin_malloc: bool = True) -> MemoryReading:
    """Run `measure_step` in a fresh interpreter with the same thread count; returns its reading."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    if pin_malloc:
        env.update(PINNED_MALLOC)
    command = [sys.executable, "-m", "benchmarks.memory", json.dumps(asdict(spec))]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"memory worker failed ({result.returncode}):\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    method = data["method"] + (f"; {PINNED_MALLOC}" if pin_malloc else "; glibc malloc defaults")
    return MemoryReading(data["baseline"], data["peak"], method)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = StepSpec(**json.loads(argv[0]))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    backbone = Backbone(label=spec.folder, device=torch.device("cpu"), folder=spec.folder, train_attn=spec.attn)
    reading = measure_step(backbone, spec.records, spec.chunk, max_length=spec.max_length, lr=spec.lr,
                           scale=spec.scale, attn=spec.attn, dtype=spec.dtype)
    out: dict[str, Any] = {"baseline": reading.baseline, "peak": reading.peak, "method": reading.method}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
