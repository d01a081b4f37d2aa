"""What made a run: the fully resolved config, a hash of the training data it used, and the poolattn version.

A run folder (a `poolattn train` output, a study run) records this identity; a later invocation reuses or resumes
the run only when its own identity matches, and otherwise names every differing key as `old -> new`. A reader of
the results never has to trust the command line of a later invocation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from poolattn.version import __version__
from poolattn.config import Config
from poolattn.data.records import Record

IDENTITY_FILE = "identity.json"
# settings that change where a run is written, how it logs or checkpoints, never what it computes
PRESENTATION_KEYS = frozenset({
    "train.output_dir", "train.disable_tqdm", "train.logging_steps", "train.report_to", "train.resume_from_checkpoint",
    "train.overwrite_output_dir", "train.dataloader_num_workers", "train.save_steps", "train.save_total_limit",
})


def records_sha256(records: Iterable[Record]) -> str:
    """SHA-256 of the records' training content (query, positive, negatives, instruction, source), in order."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.query, r.positive, r.negatives, r.instruction, r.source]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def make_identity(config: Config, data_sha256: str | None, *, sections: Iterable[str] | None = None) -> dict[str, Any]:
    """{"config": resolved config (the given sections, or all), "data_sha256": ..., "poolattn_version": ...}."""
    tree = config.to_dict()
    if sections is not None:
        tree = {k: v for k, v in tree.items() if k in set(sections)}
    return {"config": tree, "data_sha256": data_sha256, "poolattn_version": __version__}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: {"train": {"learning_rate": 1e-5}} -> {"train.learning_rate": ...}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _comparable(identity: dict[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    flat = flatten(identity.get("config") or {})
    flat["data_sha256"] = identity.get("data_sha256")
    flat["poolattn_version"] = identity.get("poolattn_version")
    skip = set(PRESENTATION_KEYS) | set(ignore)
    return {k: v for k, v in flat.items() if k not in skip and not any(k.startswith(s + ".") for s in skip)}


def identity_differences(old: dict[str, Any] | None, new: dict[str, Any], *, ignore: Iterable[str] = ()) -> list[str]:
    """`key: old -> new` for every setting (dotted), the data hash and the version that differ; sorted.

    `old` None (a run recorded before identities existed) differs in everything, said in one line.
    """
    if not old:
        return ["identity: not recorded (made by an older poolattn) -> " + str(new.get("poolattn_version"))]
    a, b = _comparable(old, ignore), _comparable(new, ignore)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def read_identity(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / IDENTITY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_identity(folder: Path, identity: dict[str, Any]) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / IDENTITY_FILE).write_text(json.dumps(identity, indent=2, default=str) + "\n")
