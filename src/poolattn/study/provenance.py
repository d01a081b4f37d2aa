"""The report's account of how the runs were made: what differs between them, the shared settings, the training.

Presentation only: everything comes from the typed results (results.py), as the trained runs recorded it.
"""

from __future__ import annotations

from pathlib import Path

from poolattn.config import BF16_UNSET
from poolattn.study import fmt
from poolattn.study.render import Block, Cell, Figure, Heading, Para, Span, Table, para
from poolattn.study.results import NOT_RECORDED, Data, Machine, Settings, StudyResults


def data_text(settings: Settings | None) -> str:
    data: Data | None = settings.data if settings else None
    if data is None:
        return NOT_RECORDED
    extras = []
    if data.max_records:
        extras.append(f"at most {data.max_records} records")
    if data.holdout:
        extras.append(f"{data.holdout} records held out for the recall@1 check")
    return data.source + (f" ({', '.join(extras)})" if extras else "")


def machine_text(machine: Machine | None) -> str:
    if machine is None:
        return NOT_RECORDED
    threads = f" ({machine.threads} threads)" if machine.threads else ""
    capability = f", torch CPU capability {machine.cpu_capability}" if machine.cpu_capability else ""
    return (f"{machine.cpu or 'unknown CPU'}{threads}{capability}, torch {machine.torch or '?'}, "
            f"device {machine.device or '?'}")


def _planned_steps(s: Settings) -> str:
    if isinstance(s.max_steps, int) and s.max_steps > 0:
        return f"{s.max_steps} (max_steps)"
    return f"{s.num_train_epochs} epoch(s)" if s.num_train_epochs is not None else NOT_RECORDED


def _lora_text(s: Settings) -> str:
    lora = s.lora
    if lora is None:
        return NOT_RECORDED
    if lora.enabled is False:
        return "disabled (full fine-tuning)"
    layers = fmt.listing(lora.layers) if lora.layers else "every layer"
    where = f" (layers {layers})" if lora.layers else ""
    if lora.bidirectional_layers != "same":
        bidirectional = fmt.listing(lora.bidirectional_layers) if lora.bidirectional_layers else "every layer"
        where = f" ({'layers ' if lora.layers else ''}{layers}; under bidirectional attention {bidirectional})"
    return f"r {lora.r}, alpha {lora.alpha}, dropout {lora.dropout} on {fmt.listing(lora.target_modules)}{where}"


def _shared_settings(s: Settings | None) -> Table | Para:
    if s is None:
        return para("The study's config was not recorded in results.json.", muted=True)
    scale, chunk = s.loss_scale, s.grad_cache_chunk_size
    temperature = f" (temperature {1 / scale:g})" if isinstance(scale, (int, float)) and scale else ""
    sizes = ", ".join(f"{k} {v}" for k, v in s.pooling_sizes)
    head_rate = s.head_learning_rate not in (None, NOT_RECORDED)
    precision = ("bf16" if s.bf16 is True else "fp16" if s.fp16 is True else BF16_UNSET if s.bf16 is None else "fp32")
    rows = [
        ("Backbone", NOT_RECORDED if s.backbone is None else s.backbone),
        ("Training steps", _planned_steps(s)),
        ("Batch", f"{s.per_device_batch} per device × {s.accumulation} accumulation"),
        ("Learning rate", f"{s.learning_rate}" + (f" (pooling head {s.head_learning_rate})" if head_rate else "")
                          + f", {s.lr_scheduler} schedule, {s.warmup_steps} warmup steps"),
        ("Loss", f"{s.loss_name}, scale {scale}{temperature}, {s.contrastive_batch} contrastive batch"
                 + (f", GradCache chunks of {chunk}" if isinstance(chunk, int) else "")),
        ("Max length", f"{s.max_length} tokens"),
        ("LoRA", _lora_text(s)),
        ("Pooling head size", f"{s.pooling_preset} preset" + (f" ({sizes})" if sizes else "")
                              + (f", {s.pooling_init} start" if s.pooling_init != NOT_RECORDED else "")),
        ("Precision", f"train {precision}, model dtype {s.model_dtype}, eval dtype {s.eval_dtype}"),
        ("Seeds", f"model {s.model_seed}, training {s.train_seed}"),
        ("Training data", data_text(s)),
        ("Evaluation tasks", fmt.listing(s.eval_tasks)),
    ]
    return Table([Cell("Setting"), Cell("Value")], [[Cell(k), Cell(str(v))] for k, v in rows])


def differences_section(results: StudyResults, order: list[str], labels: dict[str, str]) -> list[Block]:
    header = [Cell("Run"), Cell("Pooling"), Cell("Attention"), Cell("Trained")]
    rows = [[Cell(labels[k]), Cell(str(r.pooling or fmt.DASH)), Cell(str(r.attention or fmt.DASH)),
             Cell("yes" if r.trained else "no")] for k, r in ((k, results.runs[k]) for k in order)]
    intro = ("The designs differ only in pooling and attention; the untrained baseline is the reference design's "
             "architecture before fine-tuning. Everything else is shared (settings as the runs recorded them):")
    if results.run_differences:
        intro = ("The trained runs do NOT share all their settings, so their differences are not due to the "
                 "design alone. The settings below are those of the first trained run.")
    return [
        Heading("What differs between the runs", 2),
        para(intro),
        *[para(Span("Warning:", "strong"), " " + d) for d in results.run_differences],
        Table(header, rows),
        Heading("Shared settings", 3),
        _shared_settings(results.settings),
    ]


def training_section(results: StudyResults, order: list[str], labels: dict[str, str],
                     figures: dict[str, Path]) -> list[Block]:
    header = [Cell("Run"), Cell("Steps", ("num",)), Cell("Training time", ("num",)), Cell("Final loss", ("num",)),
              Cell("Held-out recall@1 before → after", ("num",)), Cell("Trainable LoRA / head", ("num",)),
              Cell("Eval time", ("num",))]
    rows = []
    for key in order:
        run = results.runs[key]
        train, eval_time = run.train, Cell(fmt.duration(run.eval_seconds), ("num",))
        if train is None:
            status = NOT_RECORDED if run.trained else "not trained"
            rows.append([Cell(labels[key])] + [Cell(status, ("num", "missing"))]
                        + [Cell(fmt.DASH, ("num", "missing"))] * 4 + [eval_time])
            continue
        losses = train.losses
        before, after = train.recall_before, train.recall_after
        recall = fmt.DASH if before is None and after is None else f"{fmt.score(before)} → {fmt.score(after)}"
        rows.append([
            Cell(labels[key]),
            Cell(fmt.DASH if train.steps is None else str(train.steps), ("num",)),
            Cell(fmt.duration(train.seconds), ("num",)),
            Cell(f"{losses[-1][1]:.4f}" if losses else fmt.DASH, ("num",)),
            Cell(recall, ("num",)),
            Cell(f"{fmt.count(train.lora_parameters)} / {fmt.count(train.head_parameters)}", ("num",)),
            eval_time,
        ])
    blocks: list[Block] = [Heading("Training", 2), Table(header, rows)]
    if "training_loss" in figures:
        blocks.append(Figure(figures["training_loss"], "training loss curves of every trained run",
                             "Training loss per logged step for every trained run."))
    else:
        blocks.append(para("No training loss was recorded.", muted=True))
    return blocks
