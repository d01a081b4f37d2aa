"""Two processes (gloo, CPU) give the same loss and gradients as one process holding the combined batch.

Each rank embeds its half of the records, the embeddings are gathered (local slice live), every rank computes
the global loss, DDP averages the parameter gradients, and the step scales by the world size: the result must
equal the single-process step over all records, for the plain path and for GradCache. One record on the second
rank holds the first rank's positive as a negative: it is masked across devices as in one process.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from poolattn.data.collator import TripletCollator
from tests.training.test_step import RECORDS_WITH_COPY, assert_same_gradients, grads_of, make_model, make_step

MODES = {"plain": dict(chunk=5, grad_cache=False), "grad_cache": dict(chunk=2, grad_cache=True)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, model_dir: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = make_model(model_dir, design=3)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        half = len(RECORDS_WITH_COPY) // world
        batch = TripletCollator(model.text_tokenizer)(RECORDS_WITH_COPY[rank * half:(rank + 1) * half])
        results = {}
        for mode, kwargs in MODES.items():
            value, grads = grads_of(ddp, make_step(model, **kwargs), batch)
            results[mode] = (value, {n.removeprefix("module."): g for n, g in grads.items()})
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_with_the_combined_batch(tiny_llama, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_llama), str(tmp_path)), nprocs=2, join=True)
    model = make_model(tiny_llama, design=3)
    batch = TripletCollator(model.text_tokenizer)(RECORDS_WITH_COPY)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for mode, kwargs in MODES.items():
        value, expected = grads_of(model, make_step(model, **kwargs), batch)
        for rank in ranks:
            got_value, got = rank[mode]
            assert got_value == pytest.approx(value, rel=1e-5), mode
            assert_same_gradients(got, expected)
        # negative control: one rank's half alone gives a different gradient
    half = TripletCollator(model.text_tokenizer)(RECORDS_WITH_COPY[:5])
    _, alone = grads_of(model, make_step(model, chunk=5, grad_cache=False), half)
    name = next(iter(expected))
    assert (alone[name] - expected[name]).abs().max() > 1e-3 * expected[name].abs().max()
