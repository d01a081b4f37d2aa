"""evaluate(): run an encoder on tasks with mteb's own evaluators and write results.json.

Scoring stays inside mteb (retrieval metrics, logistic-regression probes, k-means, correlations), so our numbers
mean what MTEB's mean. We only drive it: one task at a time, with no result cache (a rerun always recomputes),
mteb's own result file per task kept under `output_dir/mteb/`, and a flat summary in `output_dir/results.json`:

    {task: {"main_score": float, "main_score_name": str, "category": str, "scores": {metric: value},
            "evaluation_seconds": float}}

results.json is rewritten after every task, so an interrupted run keeps what it finished. Beside it,
`output_dir/items/<task>.json` holds the per-item evidence each main score is computed from (items.py), which the
study's paired bootstrap resamples.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mteb
from mteb import AbsTask
from threadpoolctl import threadpool_info, threadpool_limits
from tqdm.auto import tqdm

from poolattn.errors import InputError, UsageError
from poolattn.evaluation import items
from poolattn.evaluation.mteb import MtebAdapter, TextEncoder
from poolattn.evaluation.tasks import get_tasks, is_offline_task, task_category

logger = logging.getLogger(__name__)


class HubUnreachableError(UsageError, RuntimeError):
    """An MTEB task needed its data from the Hugging Face hub and the hub could not be reached."""


def _is_hub_error(exc: BaseException) -> bool:
    """Whether an exception (or one it wraps) says the hub or network could not be reached."""
    hub_types: tuple[type[BaseException], ...] = (ConnectionError, socket.gaierror, TimeoutError)
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

        hub_types += (LocalEntryNotFoundError, OfflineModeIsEnabled)
    except ImportError:  # pragma: no cover
        pass
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, hub_types) or type(current).__name__ in {"ConnectError", "ConnectTimeout"}:
            return True
        current = current.__cause__ or current.__context__
    return False


def hub_unreachable_message(task_name: str) -> str:
    """The one-paragraph explanation shown instead of a traceback."""
    return (
        f"MTEB task {task_name!r} needs its data from the Hugging Face hub, which cannot be reached from this "
        "machine (no network, or HF_HUB_OFFLINE is set), and the data is not in the local datasets cache. "
        "Evaluate on the offline suite instead: `poolattn evaluate --tasks suite` runs all of it, "
        "`poolattn evaluate --list-tasks` lists its tasks and categories. To run MTEB's own tasks, use a machine "
        "that reaches huggingface.co, or copy the dataset into the Hugging Face datasets cache first."
    )


def _flat_scores(task_result: Any, splits: Sequence[str]) -> tuple[float, dict[str, float]]:
    """The main score and every scalar metric, averaged over the task's evaluated subsets."""
    main = float(task_result.get_score(splits=list(splits)))
    per_metric: dict[str, list[float]] = {}
    for split in splits:
        for subset_scores in task_result.scores.get(split, []):
            for metric, value in subset_scores.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if metric != "main_score" and math.isfinite(value):
                    per_metric.setdefault(metric, []).append(float(value))
    return main, {metric: sum(values) / len(values) for metric, values in sorted(per_metric.items())}


def _write_json(path: Path, data: Any) -> None:
    """Write via a temporary file, so a crash never leaves half a results.json."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


@contextlib.contextmanager
def _datasets_progress(enabled: bool) -> Iterator[None]:
    """Silence the `datasets` library's per-map bars when the caller asked for no progress output."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if was_enabled and not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _single_threaded_scoring(adapter: MtebAdapter) -> Iterator[None]:
    """Run mteb's scoring with one OpenMP thread; the adapter gives the encoder its threads back.

    scikit-learn's k-means is OpenMP-parallel, and on a busy 2-core machine its spinning threads made one
    MiniBatchKMeans fit on 500 x 384 embeddings take 1.8 s instead of 0.03 s single-threaded, so clustering
    tasks spent most of their time waiting. Encoding keeps every thread it had.
    """
    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp"]
    adapter.encode_threads = max(counts) if counts else None
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@contextlib.contextmanager
def _hub_errors(task: AbsTask) -> Iterator[None]:
    """Turn a failure to reach the hub for an MTEB task's data into HubUnreachableError."""
    try:
        yield
    except HubUnreachableError:
        raise
    except Exception as exc:
        if not is_offline_task(task) and _is_hub_error(exc):
            raise HubUnreachableError(hub_unreachable_message(task.metadata.name)) from exc
        raise


def _run_one(adapter: MtebAdapter, task: AbsTask, batch_size: int, show_progress: bool,
             prediction_folder: Path | None = None) -> Any:
    name = task.metadata.name
    with _hub_errors(task), _single_threaded_scoring(adapter):
        model_result = mteb.evaluate(
            adapter,
            task,
            cache=None,
            overwrite_strategy="always",
            encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress},
            show_progress_bar=False,
            co2_tracker=False,
            raise_error=True,
            prediction_folder=prediction_folder,
        )
    if model_result.exceptions:
        raise RuntimeError(f"mteb could not evaluate {name}: {model_result.exceptions[0].exception}")
    return model_result.task_results[0]


def _resolve(tasks: Sequence[str | AbsTask], suite_dir: Path | None) -> list[AbsTask]:
    """Task objects in the given order, names resolved, each task once."""
    resolved: list[AbsTask] = []
    for item in tasks:
        resolved += get_tasks([item], suite_dir=suite_dir) if isinstance(item, str) else [item]
    unique = {task.metadata.name: task for task in reversed(resolved)}
    return [task for task in resolved if unique.get(task.metadata.name) is task]


def _evaluate_task(
    adapter: MtebAdapter,
    task: AbsTask,
    results: dict[str, dict[str, Any]],
    output_dir: Path | None,
    batch_size: int,
    show_progress: bool,
    items_dir: Path | None = None,
) -> None:
    """Run one task, add its summary to `results` and, with an output folder, save both result files.

    With `items_dir`, the per-item evidence behind the main score goes to `items_dir/<task>.json` (items.py); a
    task whose main score has no per-item form is logged and skipped there, its score is kept.
    """
    name = task.metadata.name
    start = time.perf_counter()
    if items_dir is None:
        task_result = _run_one(adapter, task, batch_size, show_progress)
    else:
        with _hub_errors(task), items.capture(task) as captured:  # capture loads the data: hub errors too
            task_result = _run_one(adapter, task, batch_size, show_progress, captured.folder)
            main, _ = _flat_scores(task_result, task.eval_splits)
            try:
                items.write(items.build(task, task_category(task), captured, main), items_dir)
            except items.ItemsUnavailable as exc:
                logger.warning("no item evidence saved: %s", exc)
    seconds = time.perf_counter() - start
    main, scores = _flat_scores(task_result, task.eval_splits)
    results[name] = {
        "main_score": main,
        "main_score_name": task.metadata.main_score,
        "category": task_category(task),
        "scores": scores,
        "evaluation_seconds": round(seconds, 3),
    }
    logger.info("%s: %s = %.4f (%.1f s)", name, task.metadata.main_score, main, seconds)
    if not math.isfinite(main):
        logger.warning(
            "%s: main score %s is %s, usually because every embedding came out the same (constant similarities); "
            "results.json records it as NaN",
            name, task.metadata.main_score, main,
        )
    if output_dir is not None:
        task_result.to_disk(output_dir / "mteb" / f"{name}.json")
        _write_json(output_dir / "results.json", results)


def evaluate(
    encoder: TextEncoder,
    tasks: Sequence[str | AbsTask],
    output_dir: Path | None = None,
    *,
    batch_size: int = 32,
    show_progress: bool = True,
    model_name: str = "poolattn-model",
    suite_dir: Path | None = None,
    items_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate `encoder` on `tasks` and return {task: {"main_score", "category", "scores", "evaluation_seconds"}}.

    Args:
        encoder: anything with `encode(texts, *, instruction, batch_size, show_progress) -> (N, D) array`.
        tasks: names ("suite", a category, an offline task, an MTEB task) or mteb task objects.
        output_dir: where results.json and mteb/<task>.json go; None keeps results in memory only.
        batch_size: texts per forward pass.
        show_progress: show a bar over tasks and the encoder's own bars.
        model_name: the name mteb files results under.
        suite_dir: the offline suite's folder (default: the one shipped in the package).
        items_dir: where each task's per-item evidence goes (`<task>.json`, see items.py); default
            `output_dir/items`, none without an output folder.

    Raises:
        UnknownTaskError: a task name matches nothing (raised before any model work).
        HubUnreachableError: an MTEB task's data could not be fetched; the original error is the __cause__.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, got {batch_size}")
    task_objects = _resolve(tasks, suite_dir)
    instructions = {t.metadata.name: t.entry.instruction for t in task_objects if is_offline_task(t)}
    adapter = MtebAdapter(encoder, model_name=model_name, instructions=instructions)

    if output_dir is not None:
        output_dir = Path(output_dir)
        (output_dir / "mteb").mkdir(parents=True, exist_ok=True)
        items_dir = output_dir / items.ITEMS_DIR if items_dir is None else items_dir

    results: dict[str, dict[str, Any]] = {}
    with _datasets_progress(show_progress):
        bar = tqdm(task_objects, desc="tasks", unit="task", disable=not show_progress)
        for task in bar:
            _evaluate_task(adapter, task, results, output_dir, batch_size, show_progress,
                           None if items_dir is None else Path(items_dir))
            bar.set_postfix_str(task.metadata.name)
    return results
