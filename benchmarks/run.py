"""poolattn benchmarks: training and encoding speed and memory, side by side with sentence-transformers.

    python benchmarks/run.py --quick                 # < 20 minutes on a 2-core CPU
    python benchmarks/run.py --only encode_speed_vs_st,multilayer_overhead --repeats 5 --json out.json
    python benchmarks/run.py --gpu                   # CUDA, random-init Mistral-7B shape, adds tokens/s and MFU

Every figure runs its contenders in one process, interleaved (A B A B ...) after a warm-up, and reports the
ratio of medians; raw medians are printed too. On CPU each figure of a multi-figure run gets a fresh process
(`--same-process`: this one). stdout holds a `# key: value` header and `name=value` lines (three decimals),
stderr the progress. See benchmarks/README.md for what each figure means and its target.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/run.py`: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.common import (
    MB,
    MemoryReading,
    Report,
    alternate,
    log,
    machine_header,
    median,
    print_header,
)
from benchmarks.contenders import (
    Backbone,
    adamw,
    bare_train_step,
    build_embedder,
    build_st,
    poolattn_step,
    poolattn_train_step,
    st_features,
    st_train_step,
    trainable_count,
)
from benchmarks.data import encode_texts, fit_records, sample_records, st_columns, token_match
from benchmarks.utilisation import cpu_utilisation
from poolattn.backbone.dtype import CANDIDATES
from poolattn.study.processes import ChildProcess

TARGETS = {
    "train_speed_vs_st": (">=", 1.3),
    "encode_speed_vs_st": (">=", 1.2),
    "multilayer_overhead": ("<=", 1.15),
    "gradcache_memory_ratio": ("<=", 1.5),
    "overhead_vs_bare": ("<=", 1.15),
    # fractions of this machine's measured matmul throughput, in the dtype `auto` picks (benchmarks/utilisation.py)
    "encode_cpu_utilisation": (">=", 0.6),
    "train_cpu_utilisation": (">=", 0.4),
}


@dataclass(frozen=True)
class Settings:
    """Sizes and repeats; `full` is the reference, `quick` fits 20 minutes on 2 CPU cores."""

    repeats: int = 5
    warmup: int = 1
    lr: float = 1e-4
    scale: float = 20.0  # InfoNCE scale = 1 / temperature; sentence-transformers' default, used on both sides
    train_max_length: int = 128
    train_batch: int = 64  # records (query, positive, hard negative) per contrastive batch
    train_chunk: int = 16  # records per GradCache chunk = sentence-transformers' mini_batch_size
    encode_count: int = 512
    encode_batch: int = 32
    encode_max_length: int = 256
    memory_batch: int = 256  # the figure's definition: 256 records in chunks of 16 vs a plain batch of 16
    memory_chunk: int = 16
    memory_max_length: int = 64
    memory_repeats: int = 3
    bare_batch: int = 16
    bare_max_length: int = 128
    bare_repeats: int = 9  # the two sides differ by a few percent at most: short steps need more repeats


PRESETS = {
    "full": Settings(),
    "quick": Settings(repeats=3, train_batch=32, train_chunk=8, bare_batch=8, bare_repeats=7, memory_repeats=1),
    # 7B on one GPU: chunks of 8 records x 3 texts x 256 tokens keep activations well inside 80 GB.
    "gpu": Settings(repeats=5, train_max_length=256, train_batch=64, train_chunk=8, encode_count=1024,
                    encode_max_length=512, memory_max_length=128, memory_repeats=3, bare_batch=8,
                    bare_max_length=256),
    # tiny random models (tests, dry runs): every code path, seconds of work; lengths leave room for an instruction
    # in characters, as the tests' tokenizer counts them
    "tiny": Settings(repeats=1, warmup=1, train_batch=8, train_chunk=4, encode_count=32, encode_batch=8,
                     encode_max_length=160, memory_batch=32, memory_chunk=4, memory_max_length=160,
                     memory_repeats=1, bare_batch=4, bare_repeats=1, train_max_length=160, bare_max_length=160),
}


@dataclass
class Bench:
    """What every figure needs: the backbone, the sizes, where results go, and GPU-only facts."""

    backbone: Backbone
    settings: Settings
    report: Report
    gpu: bool = False
    peak_tflops: float | None = None
    default_malloc: bool = False
    # cpu_utilisation's dtypes: both by default; only the one asked for with --dtype float32|bfloat16
    utilisation_dtypes: tuple[str, ...] = tuple(CANDIDATES)

    @property
    def device(self) -> torch.device:
        return self.backbone.device


def _free() -> None:
    """Collect what the last figure built (peft leaves reference cycles), so each figure starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _all_texts(batch: dict) -> list:
    return [*batch["queries"], *batch["positives"], *batch["negatives"]]


def _real_ids(features: dict) -> list[list[int]]:
    """Token ids of each row without padding (right padding: the first `sum(mask)` positions)."""
    lengths = features["attention_mask"].sum(dim=1).tolist()
    return [row[:n] for row, n in zip(features["input_ids"].tolist(), lengths)]


def _padded_tokens(lengths: Sequence[int], ranges: Sequence[tuple[int, int]]) -> int:
    """Tokens a chunked forward computes: each chunk is as wide as its longest text."""
    return sum((end - start) * max(lengths[start:end]) for start, end in ranges)


def _padding_note(step, batch: dict, st_feats: list[dict], chunk: int, texts_per_record: int) -> str:
    """Real tokens vs tokens each side computes per forward pass: the main reason the training speeds differ.

    poolattn sorts all texts of the batch by length before cutting chunks (`ContrastiveStep._chunks`, read here so
    the count is exact); sentence-transformers cuts each column in data order and trims each mini-batch's padding.
    """
    lengths = [len(t.ids) for t in _all_texts(batch)]
    chunks = step._chunks(_all_texts(batch), len(batch["queries"]))
    ours = _padded_tokens([lengths[i] for c in chunks for i in c],
                          [(sum(map(len, chunks[:k])), sum(map(len, chunks[:k + 1]))) for k in range(len(chunks))])
    columns = [[len(ids) for ids in _real_ids(f)] for f in st_feats]

    def theirs(mini: int) -> int:
        return sum(_padded_tokens(col, [(i, min(i + mini, len(col))) for i in range(0, len(col), mini)])
                   for col in columns)

    return (f"real {sum(lengths):,}; computed with padding: poolattn {ours:,}, sentence-transformers "
            f"{theirs(chunk):,} (mini-batch {chunk}), {theirs(chunk * texts_per_record):,} "
            f"(mini-batch {chunk * texts_per_record})")


# ------------------------------------------------------------------------------------------------ figures


def train_speed_vs_st(bench: Bench) -> None:
    """Training records/s, poolattn design 1 vs sentence-transformers, GradCache on both, same triples and tokens."""
    from poolattn.data.collator import TripletCollator
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    s, b, r = bench.settings, bench.backbone, bench.report
    model = build_embedder(b, 1, max_length=s.train_max_length, attn=b.train_attn, dtype=b.train_dtype).train()
    st = build_st(b, max_length=s.train_max_length, attn=b.train_attn, dtype=b.train_dtype).train()
    template = model.config.instruction_template
    records = fit_records(sample_records(s.train_batch), model.tokenizer, max_length=s.train_max_length,
                          template=template)
    batch = TripletCollator(model.text_tokenizer)(records)
    features = st_features(st, st_columns(records, st.tokenizer.eos_token, template), bench.device)
    ours = [t.ids for t in _all_texts(batch)]
    theirs = [ids for f in features for ids in _real_ids(f)]
    r.emit("train_token_match", token_match(ours, theirs))
    r.note("train_lora_parameters", f"poolattn {trainable_count(model):,}, sentence-transformers {trainable_count(st):,}")

    step = poolattn_step(model, chunk=s.train_chunk, grad_cache=s.train_batch > s.train_chunk, scale=s.scale)
    texts_per_record = len(ours) // len(records)
    same = CachedMultipleNegativesRankingLoss(st, scale=s.scale, mini_batch_size=s.train_chunk)
    equal = CachedMultipleNegativesRankingLoss(st, scale=s.scale, mini_batch_size=s.train_chunk * texts_per_record)
    ours_opt, st_opt = adamw(model.parameters(), s.lr), adamw(st.parameters(), s.lr)

    lengths = [len(ids) for ids in ours]
    r.note("train_tokens_per_pass", _padding_note(step, batch, features, s.train_chunk, texts_per_record))

    log(f"train_speed_vs_st: {len(records)} records, chunks of {s.train_chunk}, max_length {s.train_max_length}")
    times = alternate({
        "poolattn": lambda: poolattn_train_step(model, step, ours_opt, batch),
        "st": lambda: st_train_step(same, st_opt, features, bench.device),
        "st_equal_texts": lambda: st_train_step(equal, st_opt, features, bench.device),
    }, warmup=s.warmup, repeats=s.repeats, device=bench.device)
    r.samples.update({f"train_seconds_{k}": v for k, v in times.items()})
    rates = {k: len(records) / median(v) for k, v in times.items()}
    r.emit("poolattn_train_samples_per_s", rates["poolattn"])
    r.emit("st_train_samples_per_s", rates["st"])
    r.emit("st_equal_texts_train_samples_per_s", rates["st_equal_texts"])
    r.emit("poolattn_train_tokens_per_s", sum(lengths) / median(times["poolattn"]))
    r.emit("train_speed_vs_st", rates["poolattn"] / rates["st"])
    r.emit("train_speed_vs_st_equal_texts", rates["poolattn"] / rates["st_equal_texts"])


def encode_speed_vs_st(bench: Bench) -> None:
    """Texts/s of Embedder.encode (design 1) vs SentenceTransformer.encode: same weights, tokens, pooling, batch."""
    s, b, r = bench.settings, bench.backbone, bench.report
    encoding = dict(max_length=s.encode_max_length, attn=b.encode_attn, dtype=b.encode_dtype)
    model = build_embedder(b, 1, **encoding, lora=False)
    st = build_st(b, **encoding, lora=False).eval()
    # a model still in training (unmerged LoRA adapters); `Embedder.load` merges them, which is what this measures
    adapted = build_embedder(b, 1, **encoding, lora=True)
    texts = encode_texts(s.encode_count, model.tokenizer, max_length=s.encode_max_length)
    st_texts = [t + st.tokenizer.eos_token for t in texts]
    ours = [t.ids for t in model.text_tokenizer.tokenize(texts)]
    theirs = [ids for i in range(0, len(st_texts), 64) for ids in _real_ids(st.preprocess(st_texts[i:i + 64]))]
    r.emit("encode_token_match", token_match(ours, theirs))
    r.note("encode_tokens", f"{sum(map(len, ours)):,} real tokens in {len(texts)} texts "
           f"(min {min(map(len, ours))}, max {max(map(len, ours))})")

    def run_ours():
        return model.encode(texts, batch_size=s.encode_batch, show_progress=False)

    def run_st():
        return st.encode(st_texts, batch_size=s.encode_batch, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    agreement = (run_ours() * run_st()).sum(axis=1)  # both unit rows: cosine per text
    r.emit("encode_cosine_poolattn_vs_st_min", float(agreement.min()))
    log(f"encode_speed_vs_st: {len(texts)} texts, batch {s.encode_batch}, max_length {s.encode_max_length}")
    times = alternate({
        "poolattn": run_ours,
        "st": run_st,
        "poolattn_lora": lambda: adapted.encode(texts, batch_size=s.encode_batch, show_progress=False),
    }, warmup=s.warmup, repeats=s.repeats, device=bench.device)
    r.samples.update({f"encode_seconds_{k}": v for k, v in times.items()})
    ours_rate, st_rate, lora_rate = (len(texts) / median(times[k]) for k in ("poolattn", "st", "poolattn_lora"))
    r.emit("poolattn_encode_texts_per_s", ours_rate)
    r.emit("st_encode_texts_per_s", st_rate)
    r.emit("encode_speed_vs_st", ours_rate / st_rate)
    r.emit("poolattn_lora_encode_texts_per_s", lora_rate)
    r.emit("encode_lora_unmerged_slowdown", ours_rate / lora_rate)


def multilayer_overhead(bench: Bench) -> None:
    """Encode time of design 5 (multi-layer pooling, bidirectional) over design 1 (EOS, causal), same texts."""
    s, b, r = bench.settings, bench.backbone, bench.report
    encoding = dict(max_length=s.encode_max_length, attn=b.encode_attn, dtype=b.encode_dtype, lora=False)
    one, five = build_embedder(b, 1, **encoding), build_embedder(b, 5, **encoding)
    texts = encode_texts(s.encode_count, one.tokenizer, max_length=s.encode_max_length)
    log(f"multilayer_overhead: {len(texts)} texts, batch {s.encode_batch}")
    times = alternate({
        "design1": lambda: one.encode(texts, batch_size=s.encode_batch, show_progress=False),
        "design5": lambda: five.encode(texts, batch_size=s.encode_batch, show_progress=False),
    }, warmup=s.warmup, repeats=s.repeats, device=bench.device)
    r.samples.update({f"encode_seconds_{k}": v for k, v in times.items()})
    r.emit("design1_encode_texts_per_s", len(texts) / median(times["design1"]))
    r.emit("design5_encode_texts_per_s", len(texts) / median(times["design5"]))
    r.emit("multilayer_overhead", median(times["design5"]) / median(times["design1"]))


def _memory_reading(bench: Bench, records: int, chunk: int) -> MemoryReading:
    s, b = bench.settings, bench.backbone
    if b.device.type == "cpu" and b.folder is not None:
        from benchmarks.memory import StepSpec, measure_in_subprocess

        return measure_in_subprocess(StepSpec(b.folder, records, chunk, s.memory_max_length, s.lr, s.scale,
                                              b.train_attn, b.train_dtype), pin_malloc=not bench.default_malloc)
    from benchmarks.memory import measure_step  # CUDA statistics (or the CPU dry run) in this process

    reading = measure_step(b, records, chunk, max_length=s.memory_max_length, lr=s.lr, scale=s.scale,
                           attn=b.train_attn, dtype=b.train_dtype)
    _free()  # the measured model must be gone before the next one loads
    return reading


def gradcache_memory_ratio(bench: Bench) -> None:
    """Peak memory of one step over 256 records in GradCache chunks of 16, over a plain step of 16 records."""
    s, r = bench.settings, bench.report
    log(f"gradcache_memory_ratio: {s.memory_batch} records in chunks of {s.memory_chunk} vs a plain step of "
        f"{s.memory_chunk}; max_length {s.memory_max_length}; a fresh process per measurement on CPU")
    readings: dict[str, list[MemoryReading]] = {"gradcache": [], "plain": []}
    for repeat in range(s.memory_repeats):
        for name, records in (("gradcache", s.memory_batch), ("plain", s.memory_chunk)):
            reading = _memory_reading(bench, records, s.memory_chunk)
            readings[name].append(reading)
            log(f"  repeat {repeat + 1}/{s.memory_repeats}: {name} baseline {reading.baseline / MB:.0f} MB, "
                f"peak {reading.peak / MB:.0f} MB (+{reading.above_baseline / MB:.0f} MB)")
    r.note("memory_method", readings["plain"][0].method)
    step = {k: median([x.above_baseline / MB for x in v]) for k, v in readings.items()}
    total = {k: median([x.peak / MB for x in v]) for k, v in readings.items()}
    for name in readings:
        r.samples[f"memory_step_mb_{name}"] = [x.above_baseline / MB for x in readings[name]]
        r.samples[f"memory_total_mb_{name}"] = [x.peak / MB for x in readings[name]]
        r.emit(f"{name}_step_peak_mb", step[name])
        r.emit(f"{name}_total_peak_mb", total[name])
    r.emit("gradcache_memory_ratio", step["gradcache"] / step["plain"])
    r.emit("gradcache_memory_ratio_total", total["gradcache"] / total["plain"])


def overhead_vs_bare(bench: Bench) -> None:
    """A poolattn design-1 training step over a bare backbone+LoRA step on the identical padded token batch."""
    from poolattn.data.collator import TripletCollator

    s, b, r = bench.settings, bench.backbone, bench.report
    model = build_embedder(b, 1, max_length=s.bare_max_length, attn=b.train_attn, dtype=b.train_dtype).train()
    records = fit_records(sample_records(s.bare_batch, seed=2), model.tokenizer, max_length=s.bare_max_length,
                          template=model.config.instruction_template)
    batch = TripletCollator(model.text_tokenizer)(records)
    # one chunk = the whole batch: poolattn pads exactly the tensor the bare step gets
    step = poolattn_step(model, chunk=len(records), grad_cache=False, scale=s.scale)
    features = {k: v.to(bench.device) for k, v in model.text_tokenizer.collate(_all_texts(batch)).items()}
    optimizer = adamw(model.parameters(), s.lr)
    r.note("bare_batch", f"{len(records)} records = {features['input_ids'].shape[0]} texts x "
           f"{features['input_ids'].shape[1]} tokens")
    log(f"overhead_vs_bare: {tuple(features['input_ids'].shape)} tokens")
    times = alternate({
        "poolattn": lambda: poolattn_train_step(model, step, optimizer, batch),
        "bare": lambda: bare_train_step(model.backbone, optimizer, features),
    }, warmup=s.warmup, repeats=s.bare_repeats, device=bench.device)
    r.samples.update({f"step_seconds_{k}": v for k, v in times.items()})
    r.emit("poolattn_step_s", median(times["poolattn"]))
    r.emit("bare_step_s", median(times["bare"]))
    r.emit("overhead_vs_bare", median(times["poolattn"]) / median(times["bare"]))


def training_mfu(bench: Bench) -> None:
    """GPU mode: training tokens/s and model-FLOPs utilisation of designs 1 and 5 (GradCache, same batch)."""
    from benchmarks.gpu import FLOP_FORMULA, flop_counts, utilisation
    from poolattn.data.collator import TripletCollator

    s, b, r = bench.settings, bench.backbone, bench.report
    r.note("mfu_formula", FLOP_FORMULA)
    r.note("peak_tflops", f"{bench.peak_tflops}")
    models = {d: build_embedder(b, d, max_length=s.train_max_length, attn=b.train_attn, dtype=b.train_dtype).train()
              for d in (1, 5)}
    records = fit_records(sample_records(s.train_batch), models[1].tokenizer, max_length=s.train_max_length,
                          template=models[1].config.instruction_template)
    grad_cache = s.train_batch > s.train_chunk
    runs: dict[str, Callable[[], None]] = {}
    tokens = 0
    for design, model in models.items():
        batch = TripletCollator(model.text_tokenizer)(records)
        tokens = sum(len(t.ids) for t in _all_texts(batch))
        step = poolattn_step(model, chunk=s.train_chunk, grad_cache=grad_cache, scale=s.scale)
        optimizer = adamw(model.parameters(), s.lr)
        runs[f"design{design}"] = (lambda m=model, st=step, o=optimizer, bt=batch: poolattn_train_step(m, st, o, bt))
    log(f"training_mfu: {len(records)} records, {tokens:,} real tokens per step")
    times = alternate(runs, warmup=s.warmup, repeats=s.repeats, device=bench.device)
    r.samples.update({f"train_seconds_{k}": v for k, v in times.items()})
    for design, model in models.items():
        rate = tokens / median(times[f"design{design}"])
        frozen, lora = flop_counts(model.backbone)
        mfu, hfu = utilisation(rate, frozen, lora, bench.peak_tflops, grad_cache=grad_cache)
        r.note(f"flop_counts_design{design}", f"N={frozen:,} N_lora={lora:,}")
        r.emit(f"train_tokens_per_s_design{design}", rate)
        r.emit(f"mfu_design{design}", mfu)
        r.emit(f"hfu_design{design}", hfu)


FIGURES: dict[str, Callable[[Bench], None]] = {
    "train_speed_vs_st": train_speed_vs_st,
    "encode_speed_vs_st": encode_speed_vs_st,
    "multilayer_overhead": multilayer_overhead,
    "gradcache_memory_ratio": gradcache_memory_ratio,
    "overhead_vs_bare": overhead_vs_bare,
    "cpu_utilisation": cpu_utilisation,
}
GPU_FIGURES = {"training_mfu": training_mfu}
figures = {**FIGURES, **GPU_FIGURES}


# ------------------------------------------------------------------------------------------------ driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller training batches")
    parser.add_argument("--only", help=f"comma-separated figures: {', '.join([*FIGURES, *GPU_FIGURES])}")
    parser.add_argument("--repeats", type=int,
                        help="timed repeats per contender (default 5; 3 with --quick; overhead_vs_bare uses at "
                             "least 9, 7 with --quick: its steps are short and its two sides nearly equal)")
    parser.add_argument("--gpu", action="store_true", help="CUDA, random-init Mistral-7B shape, bf16; adds MFU")
    parser.add_argument("--json", help="also write header, figures and raw samples to this JSON file")
    parser.add_argument("--threads", type=int, help="torch threads for every contender (default: torch's own)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="CPU mode: weights of every contender; auto = what poolattn's `dtype: auto` picks on "
                             "this machine, for training and for encoding separately (default auto; GPU: bfloat16); "
                             "cpu_utilisation measures both dtypes under auto, only this one otherwise")
    parser.add_argument("--backbone", default="smollm2-135m",
                        help="CPU mode: an offline model name or a checkpoint folder (default smollm2-135m)")
    parser.add_argument("--gpu-layers", type=int, help="GPU mode: decoder layers (default 32, or what fits)")
    parser.add_argument("--peak-tflops", type=float, help="GPU mode: the GPU's dense bf16 peak, if not detected")
    parser.add_argument("--tokenizer", help="GPU mode: tokenizer folder (default: cached smollm2-135m)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="CPU memory figure: keep glibc's dynamic mmap threshold (peaks become bimodal)")
    parser.add_argument("--same-process", action="store_true",
                        help="CPU mode: run every figure in this process instead of one fresh process per figure "
                             "(training leaves the heap slow to allocate from, which slowed a later encode figure)")
    parser.add_argument("--gpu-dry-run-on-cpu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tiny-settings", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = {*FIGURES, *GPU_FIGURES}
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"--only: unknown figure(s) {unknown}; choose from {sorted(known)}")
        args.only = names
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be >= 1")
    if args.gpu and not torch.cuda.is_available():
        parser.error("--gpu: no CUDA device is visible (torch.cuda.is_available() is False)")
    return args


def make_bench(args: argparse.Namespace, report: Report) -> Bench:
    gpu_mode = args.gpu or args.gpu_dry_run_on_cpu
    preset = "tiny" if args.tiny_settings else "gpu" if args.gpu else "quick" if args.quick else "full"
    settings = PRESETS[preset]
    if args.repeats is not None:
        settings = replace(settings, repeats=args.repeats, bare_repeats=max(args.repeats, settings.bare_repeats))
    if gpu_mode:
        from benchmarks.gpu import gpu_backbone, peak_tflops

        device = torch.device("cuda") if args.gpu else torch.device("cpu")
        backbone = gpu_backbone(device, dry_run=args.gpu_dry_run_on_cpu, layers=args.gpu_layers,
                                tokenizer=args.tokenizer)
        peak, source = peak_tflops(device, args.peak_tflops, dry_run=args.gpu_dry_run_on_cpu)
        report.header["peak_tflops_source"] = source
        return Bench(backbone, settings, report, gpu=True, peak_tflops=peak)
    from poolattn.backbone.offline import resolve

    folder = resolve(args.backbone)
    backbone = Backbone(label=args.backbone, device=torch.device("cpu"), folder=folder,
                        train_dtype=_cpu_dtype(args.dtype, folder, "train"),
                        encode_dtype=_cpu_dtype(args.dtype, folder, "encode"))
    dtypes = tuple(CANDIDATES) if args.dtype == "auto" else (args.dtype,)
    return Bench(backbone, settings, report, default_malloc=args.default_malloc, utilisation_dtypes=dtypes)


def _cpu_dtype(requested: str, folder: str, purpose: str) -> str:
    """`requested`, or for 'auto' what poolattn's `dtype: auto` picks for `purpose` at the backbone's shapes."""
    if requested != "auto":
        return requested
    from poolattn.backbone.dtype import auto_choice

    return auto_choice(folder, torch.device("cpu"), purpose).dtype


def _quiet_libraries() -> None:
    """Keep stderr for progress: no per-load reports from transformers, no peft deprecation notes."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def _start(args: argparse.Namespace) -> None:
    _quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)


def _figure_in_fresh_process(argv: list[str], name: str) -> dict[str, Any]:
    """Runs in a spawned child: figure `name` on a bench built from `argv`; returns what it recorded."""
    args = parse_args(argv)
    _start(args)
    report = Report()
    figures[name](make_bench(args, report))
    return {"figures": report.figures, "samples": report.samples, "notes": report.notes}


def run_figure(name: str, bench: Bench, argv: list[str], fresh: bool) -> None:
    """Figure `name`, here or (`fresh`) in a new process whose figures, samples and notes join `bench.report`.

    Why a fresh process: a training figure leaves glibc's heap large and fragmented, and later allocations search
    it. On a 2-core Intel Xeon with AMX (bfloat16), encode_speed_vs_st read poolattn at 63.5 texts/s after
    train_speed_vs_st in the same process and 74.5 in a process of its own (sentence-transformers 54.0 and 56.5).
    """
    if not fresh:
        figures[name](bench)
        _free()
        return
    with ChildProcess("measuring", then="run the benchmark again (--only names figures)") as child:
        recorded = child.call(_figure_in_fresh_process, argv, name, what=name)
    for part in ("figures", "samples", "notes"):
        getattr(bench.report, part).update(recorded[part])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    _start(args)
    report = Report()
    bench = make_bench(args, report)
    names = args.only or [*FIGURES, *(GPU_FIGURES if bench.gpu else {})]
    report.header = {**machine_header(bench.device), **report.header}
    report.header["backbone"] = bench.backbone.label
    b = bench.backbone
    report.header["dtype"] = (f"training {b.train_dtype} weights, encoding {b.encode_dtype} weights, fp32 LoRA; "
                              "torch.autocast(bf16) in training exactly when the weights are bfloat16, none in "
                              "encode (cpu_utilisation: float32 and bfloat16 each)")
    report.header["attention"] = f"training {bench.backbone.train_attn}, encoding {bench.backbone.encode_attn}"
    report.header["settings"] = asdict(bench.settings)
    print_header(report.header)
    fresh = not bench.gpu and not args.same_process and len(names) > 1
    for name in names:
        log(f"figure {name}" + (" (in a fresh process)" if fresh else ""))
        run_figure(name, bench, argv, fresh)
    report.header["load_average_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# load_average_at_end: {report.header['load_average_at_end']}", flush=True)
    for name in TARGETS:
        if name in report.figures:
            op, target = TARGETS[name]
            value = report.figures[name]
            met = value >= target if op == ">=" else value <= target
            log(f"{name}={value:.3f} (target {op} {target}: {'met' if met else 'MISSED'})")
    if args.json:
        report.write_json(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
