"""All-gather across processes that keeps the gradient of the local slice.

`accelerate.utils.gather` drops gradients. Here every rank receives all ranks' tensors as constants, with its own
slice put back as the live tensor, so the loss on the gathered batch back-propagates into local embeddings
only. Each rank then computes the same global loss, and the gradient it sends into its own embeddings is exact
(it includes the other ranks' queries' terms). Since DDP averages parameter gradients over ranks, the caller
multiplies the gradient by the world size (`world_size()`). Uneven sizes per rank are allowed.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """torch.distributed's rank (accelerate's process_index read 0 on every rank under DeepSpeed on CPU)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_with_local_grad(x: Tensor) -> Tensor:
    """Concatenate `x` from every rank along dim 0, in rank order; only the local slice carries gradient."""
    world = world_size()
    if world == 1:
        return x
    local = x.detach().contiguous()
    size = torch.tensor([local.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes_int = [int(s.item()) for s in sizes]
    longest = max(sizes_int)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    buffers = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(buffers, padded)
    parts = [buffer[:n] for buffer, n in zip(buffers, sizes_int)]
    parts[rank()] = x
    return torch.cat(parts, dim=0)
