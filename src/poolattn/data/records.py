"""Training records (query, positive, negatives, instruction) from JSON/JSONL files or a Hugging Face dataset.

Every record is validated when the dataset is opened, before any training step: a bad record (missing or empty
field, wrong type, broken JSON line) stops the run with an error naming file, line and field, or, with
`on_bad_record="skip"`, is counted and reported. Nothing is dropped silently. Uncompressed .jsonl files are
indexed by byte offset and read line by line when a batch needs them, so large files stream.

Accepted fields: `query`; `positive` (or `postive`, as the paper's published data spells it); `negative` or
`negatives` (a string, a list of strings, or absent); optional `instruction`, or `task` mapped to an
instruction (data/prompts.py); optional `id` and `source`. Any other field is reported (a warning with the first
line numbers, or with `strict=True` a bad record), since it is most often a misspelt one (`negatvie`).

Files are UTF-8 (a leading byte-order mark is accepted); a line that is not is a bad record, named by file, line
and byte offset.
"""

from __future__ import annotations

import difflib
import gzip
import json
import logging
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from poolattn.data.prompts import task_instruction
from poolattn.errors import InputError, InputNotFoundError, UsageError

logger = logging.getLogger(__name__)

BUNDLED_TRAINING_SET = "train/triples.jsonl.gz"
KNOWN_FIELDS = ("query", "positive", "postive", "negative", "negatives", "instruction", "task", "id", "source")


@dataclass
class Record:
    """One training example: a query, its positive, and zero or more hard negatives."""

    id: str
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    instruction: str | None = None
    source: str | None = None


class BadRecordError(UsageError, ValueError):
    """A training record is malformed; the message names where and which field."""

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}. Fix the record, or pass --on_bad_record skip to skip such records")


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise BadRecordError(where, f"field '{key}' is missing")
    if not isinstance(value, str):
        raise BadRecordError(where, f"field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRecordError(where, f"field '{key}' is empty")
    return value


def parse_record(obj: Any, where: str, default_id: str, default_instruction: str | None = None) -> Record:
    """Validate one raw record (a dict from JSON or a dataset row).

    Raises:
        BadRecordError: naming `where` (file:line) and the field.
    """
    if not isinstance(obj, dict):
        raise BadRecordError(where, f"a record must be a JSON object, got {type(obj).__name__}")
    query = _text(obj, "query", where)
    positive_key = "positive" if "positive" in obj else "postive" if "postive" in obj else "positive"
    positive = _text(obj, positive_key, where)
    raw = obj.get("negatives", obj.get("negative"))
    key = "negatives" if "negatives" in obj else "negative"
    if raw is None:
        negatives: list[str] = []
    elif isinstance(raw, str):
        negatives = [_text(obj, key, where)]
    elif isinstance(raw, list):
        negatives = []
        for i, item in enumerate(raw):
            if not isinstance(item, str) or not item.strip():
                raise BadRecordError(where, f"field '{key}[{i}]' must be a non-empty string, got {item!r:.40}")
            negatives.append(item)
    else:
        raise BadRecordError(where, f"field '{key}' must be a string or a list of strings, got {type(raw).__name__}")
    instruction = obj.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise BadRecordError(where, f"field 'instruction' must be a string, got {type(instruction).__name__}")
    if instruction is None and obj.get("task") is not None:
        try:
            instruction = task_instruction(str(obj["task"]))
        except KeyError as exc:
            raise BadRecordError(where, str(exc.args[0])) from None
    record_id = obj.get("id")
    source = obj.get("source")
    return Record(
        id=str(record_id) if record_id is not None else default_id,
        query=query,
        positive=positive,
        negatives=negatives,
        instruction=instruction or default_instruction,
        source=str(source) if source is not None else None,
    )


@dataclass
class LoadReport:
    """What opening a dataset found: how many records were kept, how many were bad (and the first few)."""

    name: str
    kept: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def add_bad(self, error: BadRecordError) -> None:
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(f"{error.where}: {error.problem}")

    def summary(self) -> str:
        text = f"{self.name}: {self.kept} records"
        if self.skipped:
            text += f", {self.skipped} bad records skipped (first: {'; '.join(self.examples)})"
        return text


class TripleDataset(Dataset):
    """Map-style dataset of `Record`s: in memory, or an offset index into an uncompressed .jsonl file."""

    def __init__(self, records: list[Record] | None, report: LoadReport, *, path: Path | None = None,
                 offsets: array | None = None, ids: list[str] | None = None, default_instruction: str | None = None):
        self._records = records
        self._path, self._offsets, self._ids = path, offsets, ids
        self._default_instruction = default_instruction
        self._handle = None
        self.report = report
        self.sources: list[str | None] = [r.source for r in records] if records is not None else []

    def __len__(self) -> int:
        return len(self._records) if self._records is not None else len(self._offsets)

    def __getitem__(self, index: int) -> Record:
        if self._records is not None:
            return self._records[index]
        if self._handle is None:
            self._handle = open(self._path, "rb")
        self._handle.seek(self._offsets[index])
        line = self._handle.readline().decode("utf-8-sig")
        return parse_record(json.loads(line), f"{self._path}", self._ids[index], self._default_instruction)

    def __getstate__(self) -> dict:  # DataLoader workers reopen the file
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def subset(self, indices: list[int]) -> TripleDataset:
        """An in-memory dataset of the given records (used for the held-out check)."""
        records = [self[i] for i in indices]
        return TripleDataset(records, LoadReport(f"{self.report.name} (subset)", kept=len(records)))


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) of a .jsonl or .jsonl.gz file; offsets index the uncompressed bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            offset = 0
            for number, raw in enumerate(handle, start=1):
                yield number, offset, raw
                offset += len(raw)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise InputError(f"training data {str(path)!r} is not a readable gzip file ({exc}); compress it again "
                         "(gzip FILE) or give the uncompressed .jsonl") from None


def _decode(raw: bytes, where: str, offset: int = 0) -> str:
    """UTF-8 text of `raw` (a leading byte-order mark dropped).

    Raises:
        BadRecordError: naming the first bad byte and its offset in the file.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRecordError(
            where, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {offset + exc.start} of the file); "
            "save the file as UTF-8"
        ) from None


def unknown_fields(obj: Any) -> list[str]:
    """Fields of a raw record that poolattn does not read (see KNOWN_FIELDS)."""
    return sorted(key for key in obj if key not in KNOWN_FIELDS) if isinstance(obj, dict) else []


class _UnknownFields:
    """Collects unknown field names and the first line numbers they appear on, for one warning at the end."""

    def __init__(self, path: Path, strict: bool) -> None:
        self.path, self.strict = path, strict
        self.seen: dict[str, list[str]] = {}

    def check(self, obj: Any, where: str, line: str) -> None:
        for key in unknown_fields(obj):
            if self.strict:
                close = difflib.get_close_matches(key, KNOWN_FIELDS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise BadRecordError(where, f"unknown field '{key}'{hint}; known fields: {list(KNOWN_FIELDS)}")
            self.seen.setdefault(key, []).append(line)

    def warn(self) -> None:
        for key, lines in self.seen.items():
            close = difflib.get_close_matches(key, KNOWN_FIELDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            logger.warning("%s: unknown field '%s'%s ignored in %d records (first: %s); --strict makes it an error",
                           self.path, key, hint, len(lines), ", ".join(lines[:5]))


def load_file(path: str | Path, *, on_bad_record: str = "error", default_instruction: str | None = None,
              strict: bool = False) -> TripleDataset:
    """Open a .json / .jsonl / .jsonl.gz file of records, validating every one.

    Raises:
        FileNotFoundError: no such file.
        BadRecordError: a bad record (not UTF-8, not JSON, a missing field; with `strict`, an unknown field)
            while `on_bad_record == "error"`.
        ValueError: no usable record, or a corrupt gzip file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"training data {str(path)!r} does not exist")
    report = LoadReport(str(path))
    name = path.name.removesuffix(".gz")
    unknown = _UnknownFields(path, strict)

    def bad(error: BadRecordError) -> None:
        if on_bad_record == "error":
            raise error
        report.add_bad(error)

    if name.endswith(".jsonl"):
        indexed = path.suffix != ".gz"  # uncompressed: keep byte offsets only, read records when needed
        offsets, ids, sources, records = array("q"), [], [], []
        for number, offset, raw in _lines(path):
            where = f"{path}:{number}"
            try:
                line = _decode(raw, where, offset)
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadRecordError(where, f"not valid JSON ({exc.msg})") from None
                unknown.check(obj, where, str(number))
                record = parse_record(obj, where, f"{path.name}:{number}", default_instruction)
            except BadRecordError as error:
                bad(error)
                continue
            if indexed:
                offsets.append(offset)
                ids.append(record.id)
                sources.append(record.source)
            else:
                records.append(record)
        unknown.warn()
        if not indexed:
            report.kept = len(records)
            return _non_empty(TripleDataset(records, report))
        report.kept = len(offsets)
        dataset = TripleDataset(None, report, path=path, offsets=offsets, ids=ids, default_instruction=default_instruction)
        dataset.sources = sources
        return _non_empty(dataset)

    if not name.endswith(".json"):
        raise InputError(f"training data {str(path)!r}: use .json, .jsonl or .jsonl.gz")
    raw = b"".join(raw for _, _, raw in _lines(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadRecordError(f"{path}:{line}", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset "
                             f"{exc.start} of the file); save the file as UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRecordError(f"{path}:{exc.lineno}", f"not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise BadRecordError(str(path), "a .json file must hold a list of records (or {\"data\": [...]})")
    records = []
    for i, obj in enumerate(data):
        where = f"{path} record {i}"
        try:
            unknown.check(obj, where, f"record {i}")
            records.append(parse_record(obj, where, f"{path.name}:{i}", default_instruction))
        except BadRecordError as error:
            bad(error)
    unknown.warn()
    report.kept = len(records)
    return _non_empty(TripleDataset(records, report))


def load_hf_dataset(name: str, *, split: str = "train", on_bad_record: str = "error",
                    default_instruction: str | None = None) -> TripleDataset:
    """Records from a Hugging Face dataset (needs the hub or a local dataset folder).

    Raises:
        ConnectionError: the hub is unreachable (with what to do instead).
        ValueError: the dataset lacks the needed columns, or has no usable record.
    """
    import datasets

    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many types for "cannot reach the hub"
        raise ConnectionError(
            f"could not load dataset {name!r} (split {split!r}): {type(exc).__name__}: {str(exc)[:300]}. Without "
            "network access, train on a local file (--dataset_file_path data.jsonl) or on the bundled set "
            "(give no dataset)."
        ) from exc
    columns = set(rows.column_names)
    if "query" not in columns or not ({"positive", "postive"} & columns):
        raise InputError(
            f"dataset {name!r} has columns {sorted(columns)}; training needs 'query' and 'positive' "
            "(or 'postive'), optionally 'negative'/'negatives' and 'instruction'"
        )
    report = LoadReport(f"{name}[{split}]")
    records = []
    for i, row in enumerate(rows):
        try:
            records.append(parse_record(row, f"{name}[{split}] row {i}", f"{name}:{i}", default_instruction))
        except BadRecordError as error:
            if on_bad_record == "error":
                raise
            report.add_bad(error)
    report.kept = len(records)
    return _non_empty(TripleDataset(records, report))


def bundled_training_set(default_instruction: str | None = None) -> TripleDataset:
    """The (query, positive, hard negative) set shipped with poolattn (see resources/DATA_CARD.md)."""
    path = resources.files("poolattn") / "resources" / BUNDLED_TRAINING_SET
    return load_file(Path(str(path)), default_instruction=default_instruction)


def _non_empty(dataset: TripleDataset) -> TripleDataset:
    if len(dataset) == 0:
        extra = f" ({dataset.report.skipped} bad records skipped)" if dataset.report.skipped else ""
        raise InputError(f"training data {dataset.report.name} has no usable records{extra}")
    if dataset.report.skipped:
        logger.warning("%s", dataset.report.summary())
    return dataset


def find_duplicates(dataset: TripleDataset) -> list[tuple[int, int]]:
    """(index, index of its first occurrence) for every record repeating an earlier one exactly (same query,
    positive, negatives and instruction): repeated records put the same query twice into some batches, where
    each copy's positive is a false negative of the other."""
    first: dict[str, int] = {}
    out = []
    for index in range(len(dataset)):
        r = dataset[index]
        key = json.dumps([r.query, r.positive, r.negatives, r.instruction])
        if key in first:
            out.append((index, first[key]))
        else:
            first[key] = index
    return out


def handle_duplicates(dataset: TripleDataset, *, on_bad_record: str = "error") -> TripleDataset:
    """Report exact duplicate records by where they are (file:line, from the record id); with
    `on_bad_record="skip"` drop every copy after the first, otherwise keep them. `dataset.duplicates` counts them."""
    duplicates = find_duplicates(dataset)
    dataset.duplicates = len(duplicates)
    if not duplicates:
        return dataset
    shown = "; ".join(f"{dataset[i].id} repeats {dataset[j].id}" for i, j in duplicates[:5])
    more = f" (and {len(duplicates) - 5} more)" if len(duplicates) > 5 else ""
    if on_bad_record != "skip":
        logger.warning("%s: %d duplicate records kept: %s%s. Remove them, or pass --on_bad_record skip to drop "
                       "every copy after the first", dataset.report.name, len(duplicates), shown, more)
        return dataset
    logger.warning("%s: %d duplicate records dropped: %s%s", dataset.report.name, len(duplicates), shown, more)
    drop = {i for i, _ in duplicates}
    kept = dataset.subset([i for i in range(len(dataset)) if i not in drop])
    kept.report, kept.duplicates = dataset.report, len(duplicates)
    return kept
