"""`PoolattnTrainer`: the Hugging Face Trainer with our loss path and our checkpoint format.

What changes and why:
- `compute_loss` hands the batch to `ContrastiveStep` (one contrastive batch over per-device x accumulation x
  processes, GradCache when asked). The Trainer itself runs with gradient_accumulation_steps=1 and a dataloader
  batch of per-device x accumulation records: accumulation here means more texts in one softmax, not more
  optimizer micro-steps, which is what lost the paper its in-batch negatives.
- the save hook writes `Embedder.save` folders, so every checkpoint loads with `Embedder.load`; checkpoints are
  written into a staging folder and renamed into place, so a run killed while saving leaves the previous one intact.
- resume loads our adapter + head weights back into the live model.
- the optimizer and learning-rate schedule come from the training recipe (training/recipe.py): the Trainer's own
  rule (AdamW, no weight decay on biases and norms, `lr_scheduler_type` with warmup), built where the timing in
  speed.py builds it too.
Everything else (logging, DDP/DeepSpeed through accelerate, save_total_limit) is the Trainer's.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from transformers import Trainer, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from poolattn.config import Config, ConfigError
from poolattn.data.sampler import SourceBatchSampler
from poolattn.errors import InputError, InputNotFoundError
from poolattn.training.step import ContrastiveStep, NonFiniteLossError
from poolattn.losses.gather import world_size
from poolattn.model import ADAPTER_DIR, POOLER_FILE
from poolattn.training.callbacks import PoolattnTensorBoardCallback
from poolattn.training.recipe import build_optimizer, build_scheduler

logger = logging.getLogger(__name__)

STAGING_DIR = ".staging"


def to_training_arguments(config: Config, **overrides: Any) -> TrainingArguments:
    """TrainingArguments for `config`; the dataloader batch is per-device x accumulation records (see module doc)."""
    train = config.train
    use_cpu = not torch.cuda.is_available()
    kwargs: dict[str, Any] = dict(
        output_dir=train.output_dir,
        per_device_train_batch_size=train.local_batch,
        per_device_eval_batch_size=train.per_device_eval_batch_size,
        gradient_accumulation_steps=1,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        max_steps=train.max_steps,
        num_train_epochs=train.num_train_epochs,
        warmup_steps=train.warmup_steps,
        lr_scheduler_type=train.lr_scheduler_type,
        bf16=bool(train.bf16),
        fp16=train.fp16,
        logging_steps=train.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=train.seed,
        report_to=list(train.report_to),
        dataloader_num_workers=train.dataloader_num_workers,
        deepspeed=train.deepspeed,
        disable_tqdm=train.disable_tqdm,
        remove_unused_columns=False,
        use_cpu=use_cpu,
        ddp_find_unused_parameters=False,
        save_only_model=False,
    )
    # transformers renamed gradient_checkpointing to activation_checkpointing (5.x); use whichever this one has
    prefix = "activation" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else "gradient"
    kwargs[f"{prefix}_checkpointing"] = train.gradient_checkpointing
    # non-reentrant: GradCache takes parameter gradients with torch.autograd.grad, which reentrant checkpoints refuse
    kwargs[f"{prefix}_checkpointing_kwargs"] = {"use_reentrant": False}
    kwargs.update(overrides)
    try:
        return TrainingArguments(**kwargs)
    except ValueError as exc:  # transformers' own checks of the values we pass through (scheduler name, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the train settings were refused by transformers.TrainingArguments: {first}") from exc


class PoolattnTrainer(Trainer):
    """Trainer for an `Embedder` on (query, positive, negatives) batches; see the module docstring."""

    def __init__(
        self,
        *,
        model,
        args: TrainingArguments,
        train_dataset,
        data_collator,
        step: ContrastiveStep,
        batch_sampler: SourceBatchSampler,
        loss_scale: float,
        contrastive_batch: int,
        skip_nonfinite: bool = False,
        head_learning_rate: float | None = None,
        callbacks=None,
    ) -> None:
        super().__init__(
            model=model, args=args, train_dataset=train_dataset, data_collator=data_collator, callbacks=callbacks
        )
        if any(isinstance(cb, TensorBoardCallback) for cb in self.callback_handler.callbacks):
            self.remove_callback(TensorBoardCallback)  # its on_train_begin expects a transformers config
            self.add_callback(PoolattnTensorBoardCallback())
        self.step = step
        self.batch_sampler = batch_sampler
        self.loss_scale = loss_scale
        self.contrastive_batch = contrastive_batch
        self.skip_nonfinite = skip_nonfinite
        self.head_learning_rate = head_learning_rate
        self.skipped_batches = 0
        self._tokens = 0
        self._tokens_since = time.perf_counter()
        self._staging: str | None = None

    # ------------------------------------------------------------------------------------------ data
    def get_train_dataloader(self) -> DataLoader:
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
        return self.accelerator.prepare(loader)

    # ------------------------------------------------------------------------------------------ recipe
    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        # the recipe's optimizer (training/recipe.py), which the timing in speed.py builds too
        if self.optimizer is None:
            self.optimizer = build_optimizer(self.model if model is None else model, self.args,
                                             self.head_learning_rate)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            self.lr_scheduler = build_scheduler(optimizer or self.optimizer, self.args, num_training_steps)
            self._created_lr_scheduler = True  # what Trainer.create_scheduler sets: the Trainer may rebuild it
        return self.lr_scheduler

    # ------------------------------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        try:
            result = self.step(model, inputs, skip_nonfinite=self.skip_nonfinite)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(error.value, error.record_ids, step=self.state.global_step + 1) from None
        if not result.finite:
            self.skipped_batches += 1
            logger.warning("step %d: non-finite loss (%s), batch skipped: %s",
                           self.state.global_step + 1, result.value, inputs.get("ids", [])[:20])
        self._tokens += result.tokens
        return (result.loss, {}) if return_outputs else result.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            now = time.perf_counter()
            elapsed = max(now - self._tokens_since, 1e-9)
            logs["tokens_per_second"] = round(self._tokens * world_size() / elapsed, 1)
            logs["loss_scale"] = self.loss_scale
            logs["contrastive_batch"] = self.contrastive_batch
            if self.skipped_batches:
                logs["skipped_batches"] = self.skipped_batches
            self._tokens, self._tokens_since = 0, now
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------ save
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # Trainer.save_model calls this on every rank under DeepSpeed; two ranks writing one folder race (a rank
        # could read poolattn.json while the other had just truncated it). The weights are whole on every rank
        # (DDP, ZeRO-1/2), so the writer rank alone saves.
        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        self.accelerator.unwrap_model(self.model).save(output_dir)

    def _get_output_dir(self, trial) -> str:
        return self._staging or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """Write checkpoint-N into a staging folder, then rename it into place (atomic on one filesystem)."""
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING_DIR)
        if self.args.should_save and os.path.isdir(os.path.join(staging_root, name)):
            shutil.rmtree(os.path.join(staging_root, name))
        self._staging = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state into the staging folder
        if self.args.should_save:
            final = os.path.join(run_dir, name)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(os.path.join(staging_root, name), final)
            if not os.listdir(staging_root):
                os.rmdir(staging_root)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit, use_mtime=False)
        self.accelerator.wait_for_everyone()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Put a checkpoint's adapter and head weights back into the live model (optimizer state is the Trainer's)."""
        from peft import set_peft_model_state_dict

        embedder = self.accelerator.unwrap_model(model or self.model)
        folder = Path(resume_from_checkpoint)
        adapter = folder / ADAPTER_DIR / "adapter_model.safetensors"
        if adapter.is_file():
            result = set_peft_model_state_dict(embedder.backbone, load_file(str(adapter)))
            if getattr(result, "unexpected_keys", None):
                raise InputError(f"checkpoint {folder} does not match this model: {result.unexpected_keys[:5]}")
        elif hasattr(embedder.backbone, "peft_config"):
            raise InputNotFoundError(f"checkpoint {folder} has no {ADAPTER_DIR}/adapter_model.safetensors")
        pooler = folder / POOLER_FILE
        if pooler.is_file():
            embedder.pooler.load_state_dict(load_file(str(pooler)))
        logger.info("resumed weights from %s", folder)
