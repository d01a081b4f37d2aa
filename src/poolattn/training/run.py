"""`train(config)`: data, model, loss path and Trainer put together; the one place the training run is assembled."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from poolattn.config import Config
from poolattn.data.collator import TripletCollator
from poolattn.data.records import TripleDataset, bundled_training_set, handle_duplicates, load_file, load_hf_dataset
from poolattn.errors import InputError, InputNotFoundError, OutputPathError
from poolattn.model import Embedder
from poolattn.model.card import write_model_card
from poolattn.training.callbacks import HoldoutCallback
from poolattn.training.identity import identity_differences, make_identity, read_identity, records_sha256, write_identity
from poolattn.training.recipe import (batch_sampler, build_step, contrastive_batch, training_precision,
                                     use_training_kernel)
from poolattn.training.trainer import PoolattnTrainer, to_training_arguments
from poolattn.version import __version__

logger = logging.getLogger(__name__)

RUN_CONFIG = "run_config.yaml"
# Written into every output folder poolattn prepares: --overwrite_output_dir and `study --force` remove only a
# folder that carries it, so nothing the user made is ever deleted.
RUN_MARKER = "poolattn_run.json"
SUMMARY = "train_summary.json"
# Fields that may change between the first launch and a resumed one without making it "a different run".
_RESUMABLE_FIELDS = {
    "train": {"max_steps", "num_train_epochs", "resume_from_checkpoint", "logging_steps", "save_steps",
              "save_total_limit", "report_to", "disable_tqdm", "dataloader_num_workers", "overwrite_output_dir",
              "eval_steps", "skip_nonfinite", "deepspeed", "gradient_checkpointing"},
}


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_loss: float | None
    seconds: float
    holdout: dict[str, Any] | None


def load_training_data(config: Config) -> TripleDataset:
    """The configured dataset: a local file, a Hugging Face dataset, or the bundled training set."""
    data = config.data
    if data.dataset_file_path:
        dataset = load_file(data.dataset_file_path, on_bad_record=data.on_bad_record,
                            default_instruction=data.default_instruction, strict=data.strict)
    elif data.dataset_name:
        path = Path(data.dataset_name)
        if path.is_file():
            dataset = load_file(path, on_bad_record=data.on_bad_record, default_instruction=data.default_instruction,
                                strict=data.strict)
        else:
            dataset = load_hf_dataset(data.dataset_name, split=data.dataset_split, on_bad_record=data.on_bad_record,
                                      default_instruction=data.default_instruction)
    else:
        dataset = bundled_training_set(default_instruction=data.default_instruction)
    logger.info("%s", dataset.report.summary())
    return handle_duplicates(dataset, on_bad_record=data.on_bad_record)


def split_holdout(dataset: TripleDataset, count: int, max_records: int | None) -> tuple[TripleDataset, list]:
    """(training part, held-out records): every k-th record is held out, deterministically; then max_records."""
    indices = list(range(len(dataset)))
    held: list[int] = []
    if count:
        if count >= len(indices):
            raise InputError(f"data.holdout={count} leaves no training records (the dataset has {len(indices)})")
        stride = len(indices) / count
        held = sorted({int(i * stride) for i in range(count)})
    held_set = set(held)
    train_indices = [i for i in indices if i not in held_set]
    if max_records is not None:
        train_indices = train_indices[:max_records]
    part = dataset if len(train_indices) == len(dataset) else dataset.subset(train_indices)
    if part is not dataset:
        part.report = dataset.report
    return part, [dataset[i] for i in held]


def training_split(config: Config) -> tuple[TripleDataset, list]:
    """(training part, held-out records) of the configured data, as `train` splits them."""
    return split_holdout(load_training_data(config), config.data.holdout, config.data.max_records)


def hard_negatives_per_record(dataset: TripleDataset) -> float:
    """Mean hard negatives per training record: with the contrastive batch, it sets the candidates per softmax."""
    return sum(len(dataset[i].negatives) for i in range(len(dataset))) / max(len(dataset), 1)


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        section = prefix.split(".")[0] if prefix else key
        if not prefix and key in ("eval", "study"):
            continue  # how a run is evaluated or reported does not change what was trained
        if prefix and key in _RESUMABLE_FIELDS.get(section, set()):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _why_not_removable(folder: Path) -> str | None:
    """Why poolattn must not delete `folder` (None: it is a run poolattn made, in a harmless place)."""
    resolved = folder.resolve()
    if folder.is_symlink():
        return "it is a symbolic link"
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        return "it is the filesystem root or your home folder"
    if Path.cwd().resolve().is_relative_to(resolved):
        return "it is the current folder or one above it"
    if not (folder / RUN_MARKER).is_file():
        return f"it has no {RUN_MARKER}, so it is not a run folder poolattn made"
    return None


def remove_run(folder: Path, *, flag: str = "--overwrite_output_dir") -> None:
    """Delete a previous run folder, only if poolattn made it (see RUN_MARKER).

    Raises:
        OutputPathError: the folder is not a poolattn run, or a place never to delete (/, ~, the current folder).
    """
    why = _why_not_removable(folder)
    if why:
        raise OutputPathError(
            f"{flag}: will not delete {str(folder)!r}: {why}. Choose another --output_dir, or remove it yourself"
        )
    logger.warning("%s: removing the previous run in %s", flag, folder)
    shutil.rmtree(folder)


def check_output_dir(config: Config) -> bool:
    """Refuse to mix two runs in one folder; say how to resume or start over. Deletes nothing.

    Returns:
        True when --overwrite_output_dir will replace a previous poolattn run in the folder.

    Raises:
        FileExistsError: the folder holds another run, or this run's checkpoints without --resume_from_checkpoint,
            or --overwrite_output_dir names a folder poolattn did not make.
    """
    out = Path(config.train.output_dir)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"output_dir {str(out)!r} is a file; choose a folder for --output_dir")
    if not out.exists() or not any(p for p in out.iterdir() if p.name != ".staging"):
        return False
    if config.train.overwrite_output_dir:
        why = _why_not_removable(out)
        if why:
            raise OutputPathError(
                f"--overwrite_output_dir: will not delete {str(out)!r}: {why}. Choose another --output_dir, or "
                "remove it yourself"
            )
        return True
    saved = out / RUN_CONFIG
    if not saved.is_file():
        raise OutputPathError(
            f"output_dir {str(out)!r} is not empty and holds no poolattn run; choose another --output_dir "
            "(--overwrite_output_dir only replaces a previous poolattn run)"
        )
    differences = _differences(yaml.safe_load(saved.read_text()), config.to_dict())
    if differences:
        raise OutputPathError(
            f"output_dir {str(out)!r} holds a different run ({'; '.join(differences[:6])}); choose another "
            "--output_dir, or pass --overwrite_output_dir to replace it"
        )
    has_checkpoints = any(out.glob("checkpoint-*"))
    if has_checkpoints and not config.train.resume_from_checkpoint:
        raise OutputPathError(
            f"output_dir {str(out)!r} already holds checkpoints of this run; pass --resume_from_checkpoint latest "
            "to continue it, or --overwrite_output_dir to start over"
        )
    return False


def prepare_output_dir(config: Config) -> Path:
    """Check the output folder, replace a previous run if asked, and mark the folder as a poolattn run.

    Call it on the main process only, after the data and config are validated (a broken dataset deletes nothing).
    """
    out = Path(config.train.output_dir)
    if check_output_dir(config):
        remove_run(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RUN_MARKER).is_file():
        (out / RUN_MARKER).write_text(json.dumps({"poolattn_version": __version__}) + "\n")
    (out / RUN_CONFIG).write_text(config.to_yaml())
    return out


def check_resume_identity(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume a run made with other settings, other training data or another poolattn version.

    Raises:
        OutputPathError: the recorded identity differs (each differing key is named, old -> new).
    """
    recorded = read_identity(out)
    if recorded is None:
        return  # a run from before identities were recorded: the config check above is all there is
    ignore = ["eval", "study"] + [f"train.{name}" for name in _RESUMABLE_FIELDS["train"]]
    differences = identity_differences(recorded, identity, ignore=ignore)
    if differences:
        raise OutputPathError(
            f"--resume_from_checkpoint: output_dir {str(out)!r} holds a run made differently "
            f"({'; '.join(differences)}); resume with the same settings and data, choose another --output_dir, "
            "or pass --overwrite_output_dir to replace it"
        )


def _same_on_every_rank(value: Any) -> Any:
    """Rank 0's `value` on every process: a measured choice (such as dtype auto's) must not differ between ranks."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def prefix_scope(config: Config, data_sha256: str | None, world: int) -> tuple:
    """The frozen-prefix cache scope of a training run: what decides which texts share a forward pass.

    Runs with equal scopes (the designs of one attention mode and seed) see the same batches cut into the same
    chunks, so a state one made is the state another would make; a run with another seed never reads them.
    """
    return ("train", data_sha256, config.train.seed, config.train.local_batch, world,
            config.data.same_source_batches, config.loss.grad_cache_chunk_size, config.model.max_length,
            config.model.padding_side)


def train(config: Config, *, callbacks: list | None = None) -> TrainResult:
    """Train `config.model` on `config.data` with `config.loss` and `config.train`; save to train.output_dir."""
    start = time.perf_counter()
    resume = config.train.resume_from_checkpoint
    args = to_training_arguments(config)
    args.device  # sets up the process group under torchrun / accelerate, before the ranks agree on the dtype
    weights_dtype, autocast = _same_on_every_rank(training_precision(config))
    args.bf16 = autocast  # read when the Trainer builds its accelerator
    if args.process_index == 0:
        check_output_dir(config)  # fail before any work
    loaded = load_training_data(config)
    duplicates = getattr(loaded, "duplicates", 0)
    dataset, held = split_holdout(loaded, config.data.holdout, config.data.max_records)
    identity = make_identity(config, records_sha256(dataset[i] for i in range(len(dataset))))
    if resume:
        check_resume_identity(Path(config.train.output_dir), identity)
    # the dtype decided above, not a second (possibly different) measurement
    model = Embedder.from_config(dataclasses.replace(config.model, dtype=weights_dtype), device=args.device)
    use_training_kernel(model, config)
    counts = model.parameter_counts()
    world = args.world_size
    if model.prefix_cache is not None:
        model.prefix_cache.scope = prefix_scope(config, identity["data_sha256"], world)
    contrastive = contrastive_batch(config, world)
    step = build_step(config, model.text_tokenizer.collate)
    logger.info(
        "training %s on %d records: contrastive batch %d (%s), chunks of %d records%s, loss scale %g; "
        "trainable: LoRA %s, head %s; %s weights%s",
        f"{config.model.pooling.name}-{config.model.attention}", len(dataset), contrastive,
        config.loss.contrastive_batch, step.chunk_size, " with GradCache" if step.grad_cache else "",
        config.loss.scale, f"{counts['lora']:,}", f"{counts['head']:,}", weights_dtype,
        ", bfloat16 autocast" if autocast else "",
    )
    sampler = batch_sampler(config, dataset)
    collator = TripletCollator(model.text_tokenizer)
    # only now, with data, model and loss built, is anything deleted or written
    with args.main_process_first(local=False, desc="preparing the output folder"):
        if args.process_index == 0:  # one process deletes and writes; the others wait (no torchrun race)
            prepare_output_dir(config)
            write_identity(Path(config.train.output_dir), identity)  # after check_resume_identity
    trainer = PoolattnTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator,
        step=step, batch_sampler=sampler, loss_scale=config.loss.scale, contrastive_batch=contrastive,
        skip_nonfinite=config.train.skip_nonfinite, head_learning_rate=config.train.head_learning_rate,
        callbacks=callbacks,
    )
    if config.train.head_learning_rate is not None and not any(p.requires_grad for p in model.pooler.parameters()):
        logger.warning("train.head_learning_rate=%g is not used: the %s head has no trainable parameter",
                       config.train.head_learning_rate, config.model.pooling.name)
    holdout = None
    if held:
        holdout = HoldoutCallback(trainer, held, config.train.eval_steps, config.train.output_dir)
        trainer.add_callback(holdout)
    out = Path(config.train.output_dir)
    if resume == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(str(out))
        if resume is None:
            raise InputNotFoundError(f"--resume_from_checkpoint latest: no checkpoint-N folder in {str(out)!r}")
    output = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = TrainResult(out, trainer.state.global_step, losses[-1] if losses else None,
                         time.perf_counter() - start, None)
    if holdout is not None and holdout.history:
        result.holdout = {"before": holdout.before, "after": holdout.history[-1], "curve": holdout.curve()}
    if args.should_save:
        summary = {**dataclasses.asdict(result), "output_dir": str(out), "train_loss": output.training_loss,
                   "records": len(dataset), "skipped_batches": trainer.skipped_batches,
                   "bad_records_skipped": dataset.report.skipped, "duplicate_records": duplicates,
                   "duplicate_records_dropped": duplicates if config.data.on_bad_record == "skip" else 0,
                   "contrastive_batch": contrastive, "hard_negatives": hard_negatives_per_record(dataset),
                   "texts_seen": collator.texts, "texts_truncated": collator.truncated,
                   "trainable_parameters": {"lora": counts["lora"], "head": counts["head"]},
                   "precision": {"weights": weights_dtype, "bf16_autocast": autocast},
                   "data_sha256": identity["data_sha256"], "poolattn_version": identity["poolattn_version"],
                   "log_history": trainer.state.log_history}
        (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        write_model_card(out)  # again, now with the run's data, steps and held-out check
    if dataset.report.skipped:
        logger.warning("%s", dataset.report.summary())
    if collator.truncated:
        logger.warning("%d of %d training texts were longer than max_length=%d tokens and were truncated",
                       collator.truncated, collator.texts, config.model.max_length)
    return result
