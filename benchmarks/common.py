"""Measurement plumbing shared by every figure: machine header, A/B timing, peak-memory probes, output lines.

Why these choices:
- Contenders run in ONE process, interleaved A B A B after a warm-up, and figures are ratios of medians. This
  machine is noisy (FIELD-NOTES: one run was 4x slower); interleaving spreads any slow spell over both sides.
- CPU peak memory is the kernel's own high-water mark (VmHWM after resetting it through /proc/self/clear_refs),
  cross-checked by a thread sampling /proc/self/statm every 2 ms. A Python sampler alone can miss short spikes.
- Figures go to stdout as `name=value` lines (3 decimals); progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

MB = 1024 * 1024


# ------------------------------------------------------------------------------------------------ output


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the header and figures)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Report:
    """Everything a run prints: header lines, figures in order, and the raw samples behind them (for --json)."""

    header: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def emit(self, name: str, value: float) -> None:
        """Record and print one `name=value` line at once, so a long run shows figures as they come."""
        self.figures[name] = float(value)
        print(f"{name}={value:.3f}", flush=True)

    def note(self, name: str, text: str) -> None:
        """A comment line (`# name: text`) for facts that are not numbers, such as a FLOP formula."""
        self.notes[name] = text
        print(f"# {name}: {text}", flush=True)

    def write_json(self, path: str) -> None:
        data = {"header": self.header, "figures": self.figures, "notes": self.notes, "samples": self.samples}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")


# ------------------------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_header(device: torch.device) -> dict[str, Any]:
    """What a reader needs to compare two runs: CPU, threads, library versions, GPU, load average."""
    import peft
    import sentence_transformers
    import transformers

    header: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "peft": peft.__version__,
        "device": str(device),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if device.type == "cuda":
        header["gpu"] = torch.cuda.get_device_name(device)
    return header


def print_header(header: dict[str, Any]) -> None:
    for key, value in header.items():
        print(f"# {key}: {value}", flush=True)


# ------------------------------------------------------------------------------------------------ timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(
    contenders: dict[str, Callable[[], Any]], *, warmup: int, repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of each contender, run A B A B ... after `warmup` untimed rounds.

    Each call is one unit of work (one optimizer step, one encode of all texts). Nothing is shared between
    contenders except the process, its threads and the input data, which is the point.
    """
    names = list(contenders)
    for round_ in range(warmup):
        for name in names:
            log(f"  warm-up {round_ + 1}/{warmup}: {name}")
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names:
            synchronize(device)
            start = time.perf_counter()
            contenders[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            log(f"  repeat {round_ + 1}/{repeats}: {name} {times[name][-1]:.2f} s")
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# ------------------------------------------------------------------------------------------------ memory


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _high_water_mark_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc `malloc_trim`), so a baseline reading is not inflated by what
    earlier work freed but the allocator kept."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class MemoryReading:
    """Memory held before a block (`baseline`) and the block's peak; `peak - baseline` is what the block added."""

    baseline: int
    peak: int
    method: str

    @property
    def above_baseline(self) -> int:
        return max(0, self.peak - self.baseline)


class _Sampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = _rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_bytes())


@contextmanager
def peak_memory(device: torch.device, interval: float = 0.002) -> Iterator[list[MemoryReading]]:
    """Measure the block: CUDA allocator statistics on a GPU, resident set size (RSS) on the CPU.

    Yields a list that holds one `MemoryReading` once the block has finished. On the CPU the peak is the larger
    of the kernel high-water mark (exact, when it can be reset) and a 2 ms sampling thread.
    """
    out: list[MemoryReading] = []
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        yield out
        synchronize(device)
        out.append(MemoryReading(baseline, torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated"))
        return
    release_free_memory()
    baseline = _rss_bytes()
    exact = _reset_high_water_mark()
    sampler = _Sampler(interval)
    sampler.start()
    try:
        yield out
    finally:
        sampled = sampler.stop()
    kernel = _high_water_mark_bytes() if exact else None
    peak = max(sampled, kernel or 0)
    method = "RSS: VmHWM reset via clear_refs + 2 ms statm sampler" if kernel else "RSS: 2 ms statm sampler"
    out.append(MemoryReading(baseline, peak, method))
