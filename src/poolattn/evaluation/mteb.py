"""The one adapter from our encoders to mteb's encoder protocol.

mteb hands an encoder a DataLoader of {"text": [...]} batches plus the task's metadata and, for retrieval, whether
the texts are queries or documents. Our encoders take plain texts and an optional instruction and format the
instruction themselves (E5 form), so the adapter's whole job is to decide WHICH instruction a call gets:

- retrieval and reranking: the task instruction on queries, none on documents (one index serves every query);
- STS, classification, clustering, pair classification, summarization: the task instruction on every text.

The instruction comes from the offline suite's manifest when the task is ours, else from the MTEB table in
`instructions.py`, else from a generic sentence built out of the task description. Which source was used is logged
once per task, because a silent fallback would make scores incomparable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ScoringFunction
from mteb.types import PromptType
from threadpoolctl import threadpool_limits

from poolattn.evaluation.instructions import (
    MTEB_INSTRUCTIONS,
    QUERY_ONLY_CATEGORIES,
    category_from_mteb_type,
    fallback_instruction,
)
from poolattn.evaluation.tasks import read_manifest

if TYPE_CHECKING:
    from mteb import TaskMetadata
    from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    """What evaluation needs from a model: unit-norm float32 embeddings of texts, shape (N, D)."""

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
    ) -> np.ndarray: ...


def _model_meta(name: str, revision: str, uses_instructions: bool, **fields: Any) -> ModelMeta:
    if "/" not in name:  # mteb requires "organisation/model"
        name = f"poolattn/{name}"
    return ModelMeta.create_empty(
        overwrites={
            "name": name.replace(" ", "_"),
            "revision": revision,
            "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": uses_instructions,
            "framework": ["PyTorch"],
            "languages": ["eng-Latn"],
            **fields,
        }
    )


@contextlib.contextmanager
def _openmp_threads(count: int | None) -> Iterator[None]:
    if count is None:
        yield
        return
    with threadpool_limits(limits=count, user_api="openmp"):
        yield


class MtebAdapter(AbsEncoder):
    """Wraps a `TextEncoder` for `mteb.evaluate`, choosing the instruction for each encode call.

    Args:
        encoder: anything with `encode(texts, *, instruction, batch_size, show_progress)`.
        model_name: the name results are filed under.
        instructions: task name -> instruction that wins over the MTEB table (the offline suite's manifest).
        revision: a version label for mteb's result files.
        encode_threads: OpenMP threads for the encoder's forward passes, restored inside `encode` when the
            caller runs mteb's scoring with fewer (see run.py); None leaves threads alone.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        model_name: str,
        instructions: Mapping[str, str] | None = None,
        revision: str = "local",
        encode_threads: int | None = None,
        meta_fields: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(getattr(encoder, "encode", None)):
            raise TypeError(f"encoder {type(encoder).__name__} has no encode(texts, *, instruction=...) method")
        self.model = encoder
        self.instructions = dict(instructions or {})
        self.mteb_model_meta = _model_meta(
            model_name, revision, getattr(encoder, "uses_instructions", True), **dict(meta_fields or {})
        )
        self.encode_threads = encode_threads
        self._resolved: dict[str, str] = {}

    def task_instruction(self, task_metadata: TaskMetadata) -> str:
        """The instruction for a task (suite manifest > MTEB table > generic), logged once per task."""
        name = task_metadata.name
        if name in self._resolved:
            return self._resolved[name]
        if self.instructions.get(name):
            instruction, source = self.instructions[name], "the offline suite's manifest"
        elif name in MTEB_INSTRUCTIONS:
            instruction, source = MTEB_INSTRUCTIONS[name].instruction, "poolattn's MTEB instruction table"
        else:
            category = category_from_mteb_type(task_metadata.type)
            instruction = fallback_instruction(category, task_metadata.description)
            source = "a generic sentence built from the task description"
        logger.info("%s: instruction from %s: %r", name, source, instruction)
        self._resolved[name] = instruction
        return instruction

    def instruction_for(self, task_metadata: TaskMetadata, prompt_type: PromptType | None) -> str | None:
        """The instruction for one encode call, or None for documents of retrieval-like tasks."""
        category = category_from_mteb_type(task_metadata.type)
        if category in QUERY_ONLY_CATEGORIES and prompt_type == PromptType.document:
            return None
        return self.task_instruction(task_metadata)

    def encode(
        self,
        inputs: DataLoader[Any],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embeddings (N, D) float32 of every text in `inputs`, in order."""
        texts = [text for batch in inputs for text in batch["text"]]
        instruction = self.instruction_for(task_metadata, prompt_type)
        with _openmp_threads(self.encode_threads):
            embeddings = self.model.encode(
                texts,
                instruction=instruction,
                batch_size=int(kwargs.get("batch_size", 32)),
                show_progress=bool(kwargs.get("show_progress_bar", True)),
            )
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
            raise ValueError(
                f"{type(self.model).__name__}.encode returned shape {embeddings.shape} for {len(texts)} texts; "
                "expected (N, D)"
            )
        return embeddings


def weights_fingerprint(model: Any) -> str:
    """The first 12 hex digits of a SHA-256 over every parameter and buffer of `model`, in name order.

    mteb files results (and its cache skips work) by model name and revision, so two differently trained models
    of one design need different revisions: the weights themselves are the revision.
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def to_mteb(
    model: Any,
    *,
    name: str | None = None,
    revision: str | None = None,
    suite_dir: Path | None = None,
) -> MtebAdapter:
    """`model` (an Embedder) as an mteb 2.x encoder, for `mteb.evaluate(to_mteb(model), tasks=[...])`.

    Instructions are chosen as `poolattn evaluate` chooses them (the offline suite's manifest, then the MTEB
    table, then a generic sentence), so scores match. The model metadata carries the name (default
    `poolattn/<pooling>-<attention>`), the revision (default: a fingerprint of the weights, so mteb's result
    cache never mixes two models), the embedding dimension, max tokens (the inference length) and the number of
    parameters; `instruction_template` holds the E5 template the model formats instructions with.
    """
    config = model.config
    adapter = MtebAdapter(
        model,
        model_name=name or f"poolattn/{config.pooling.name}-{config.attention}",
        instructions={entry.name: entry.instruction for entry in read_manifest(suite_dir)},
        revision=revision or weights_fingerprint(model),
        meta_fields={
            "embed_dim": model.embedding_dim,
            "max_tokens": model.max_length,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "open_weights": True,
        },
    )
    adapter.instruction_template = config.instruction_template
    return adapter
