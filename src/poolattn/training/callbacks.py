"""Training callbacks: the held-out retrieval check, and TensorBoard logging that understands our config.

A cheap in-training signal (in a measured spike it ranked every run the same way as a much longer retrieval
evaluation): each held-back query must find its own positive among all held-back positives. Measured before the
first step, every `eval_steps`, and after the last; written to `holdout.json` in the output folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

from poolattn.data.records import Record

logger = logging.getLogger(__name__)


def retrieval_metrics(query_emb: np.ndarray, doc_emb: np.ndarray) -> dict[str, float]:
    """recall@1 and MRR of query i against document i among all documents (cosine; rows are unit vectors).

    Ties count against the positive: a document scoring the same as query i's own positive ranks above it, and
    so does any document when the own score is not a number. Counting ties in the positive's favour would give a
    collapsed model (every embedding the same) recall@1 = MRR = 1; this rule gives it recall@1 = 0, MRR = 1/N.
    """
    scores = query_emb @ doc_emb.T  # (N, N)
    own = np.diag(scores)[:, None]  # (N, 1)
    ahead = ~(scores < own)  # (N, N): document j ranks at or above query i's positive (NaN compares False)
    np.fill_diagonal(ahead, False)
    rank = ahead.sum(axis=1)  # 0 = own positive is strictly first
    return {"recall@1": float((rank == 0).mean()), "mrr": float((1.0 / (rank + 1)).mean())}


def holdout_metrics(embedder, records: list[Record], batch_size: int = 32) -> dict[str, float]:
    queries = embedder.encode([r.query for r in records], instruction=[r.instruction for r in records],
                              batch_size=batch_size, show_progress=False)
    docs = embedder.encode([r.positive for r in records], batch_size=batch_size, show_progress=False)
    return retrieval_metrics(queries, docs)


class HoldoutCallback(TrainerCallback):
    """Logs held-out recall@1 / MRR as `holdout_recall@1` and `holdout_mrr`; main process only."""

    def __init__(self, trainer, records: list[Record], eval_steps: int, output_dir: str) -> None:
        self.trainer, self.records, self.eval_steps = trainer, records, eval_steps
        self.path = Path(output_dir) / "holdout.json"
        self.history: list[dict] = []
        self.before: dict[str, float] | None = None

    def _measure(self, step: int) -> dict[str, float]:
        embedder = self.trainer.accelerator.unwrap_model(self.trainer.model)
        metrics = holdout_metrics(embedder, self.records, self.trainer.args.per_device_eval_batch_size)
        self.history.append({"step": step, **metrics})
        return metrics

    def curve(self) -> list[list[float]]:
        """[[step, recall@1, MRR], ...] of every check so far, the one before training first."""
        return [[h["step"], h["recall@1"], h["mrr"]] for h in self.history]

    def _write(self) -> None:
        data = {"records": len(self.records), "before": self.before, "history": self.history,
                "after": self.history[-1] if self.history else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2) + "\n")

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not self.history:
            self.before = self._measure(state.global_step)
            logger.info("held-out check before training (%d pairs): %s", len(self.records), self.before)

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.eval_steps and state.global_step % self.eval_steps == 0:
            metrics = self._measure(state.global_step)
            self.trainer.log({f"holdout_{k}": v for k, v in metrics.items()})
            self._write()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            if not self.history or self.history[-1]["step"] != state.global_step:
                self._measure(state.global_step)
            logger.info("held-out check after training: %s (before: %s)", self.history[-1], self.before)
            self._write()


class PoolattnTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard logger (`--report_to tensorboard`) for an `Embedder`.

    The stock callback writes `model.config.to_json_string()`, which only a transformers PretrainedConfig has;
    an Embedder's config is our ModelConfig dataclass, so it crashed at the first step. This one writes the
    ModelConfig as JSON text and logs the scalars (loss, learning rate, loss scale, contrastive batch) as before.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        config = getattr(model, "config", None)
        if self.tb_writer is not None and dataclasses.is_dataclass(config):
            self.tb_writer.add_text("model_config", json.dumps(dataclasses.asdict(config), indent=2))
