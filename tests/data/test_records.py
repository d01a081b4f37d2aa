"""Training records: accepted formats, bad records named by file/line/field, skip-and-report, streaming index."""

from __future__ import annotations

import gzip
import json

import pytest

from poolattn.data.records import BadRecordError, bundled_training_set, load_file
from poolattn.data.sampler import SourceBatchSampler


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_formats_the_paper_spelling_lists_and_no_negative(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [
        {"query": "q1", "postive": "p1", "negative": "n1"},
        {"query": "q2", "positive": "p2", "negatives": ["a", "b"], "instruction": "find it"},
        {"query": "q3", "positive": "p3", "task": "msmarco", "id": "x", "source": "web"},
    ])
    data = load_file(path)
    assert [r.negatives for r in (data[0], data[1], data[2])] == [["n1"], ["a", "b"], []]
    assert data[0].positive == "p1" and data[0].id == "d.jsonl:1"
    assert data[1].instruction == "find it"
    assert data[2].instruction.startswith("Given a web search query") and data[2].id == "x"
    assert data.sources == [None, None, "web"]


@pytest.mark.parametrize(
    "row,problem",
    [
        ({"positive": "p"}, "field 'query' is missing"),
        ({"query": " ", "positive": "p"}, "field 'query' is empty"),
        ({"query": "q", "positive": 3}, "field 'positive' must be a string, got int"),
        ({"query": "q", "positive": "p", "negatives": ["ok", ""]}, r"field 'negatives\[1\]'"),
        ({"query": "q", "positive": "p", "task": "unknown-task"}, "unknown task 'unknown-task'"),
        ("{broken json", "not valid JSON"),
        ("[1, 2]", "a record must be a JSON object, got list"),
    ],
)
def test_bad_record_names_file_line_and_field(tmp_path, row, problem):
    path = _jsonl(tmp_path / "bad.jsonl", [{"query": "fine", "positive": "fine"}, row])
    with pytest.raises(BadRecordError, match=rf"bad.jsonl:2: {problem}"):
        load_file(path)


def test_skip_reports_the_count(tmp_path, caplog):
    path = _jsonl(tmp_path / "d.jsonl", [{"query": "a", "positive": "b"}, "nope", {"query": "c"}, {"query": "d", "positive": "e"}])
    data = load_file(path, on_bad_record="skip")
    assert len(data) == 2 and data.report.skipped == 2
    assert "2 bad records skipped" in data.report.summary() and "d.jsonl:2" in data.report.summary()
    assert "2 bad records skipped" in caplog.text


def test_empty_or_all_bad_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="has no usable records"):
        load_file(_jsonl(tmp_path / "e.jsonl", []))
    with pytest.raises(ValueError, match=r"no usable records \(1 bad records skipped\)"):
        load_file(_jsonl(tmp_path / "b.jsonl", [{"q": 1}]), on_bad_record="skip")


def test_jsonl_streams_from_an_offset_index(tmp_path):
    rows = [{"query": f"q{i}", "positive": f"p{i}" * (i + 1)} for i in range(50)]
    data = load_file(_jsonl(tmp_path / "big.jsonl", rows))
    assert data._records is None  # nothing held in memory but offsets
    assert [data[i].positive for i in (0, 49, 7)] == [rows[0]["positive"], rows[49]["positive"], rows[7]["positive"]]


def test_json_and_gzip_files(tmp_path):
    rows = [{"query": "q", "positive": "p"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(rows[0]) + "\n")
    assert load_file(tmp_path / "a.json")[0].query == "q"
    assert load_file(tmp_path / "b.jsonl.gz")[0].query == "q"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_file(tmp_path / "missing.jsonl")


def test_bundled_training_set_loads_with_sources():
    data = bundled_training_set()
    assert len(data) > 1000
    assert len(set(data.sources)) >= 3 and all(s for s in data.sources)


def test_source_batches_are_pure_complete_and_reproducible():
    sources = ["a"] * 10 + ["b"] * 7 + ["c"] * 3
    sampler = SourceBatchSampler(sources, 4, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(20))  # nothing dropped, nothing twice
    assert len(batches) == len(sampler)
    full = [b for b in batches if len({sources[i] for i in b}) == 1 and len(b) == 4]
    assert len(full) == 2 + 1  # 10 -> 2 full batches of 'a', 7 -> 1 of 'b', 3 of 'c' -> leftovers
    assert batches == list(SourceBatchSampler(sources, 4, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches


GOOD = b'{"query": "q1", "positive": "p1"}\n'
LATIN1 = '{"query": "caf\xe9", "positive": "p2"}\n'.encode("latin-1")  # 0xe9 at byte 14 of line 2


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_non_utf8_is_named_by_file_line_and_offset_and_skippable(tmp_path, suffix):
    raw = GOOD + LATIN1 + GOOD
    path = tmp_path / f"d{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    with pytest.raises(BadRecordError, match=rf"d{suffix}:2: not valid UTF-8 \(byte 0xe9 at byte offset "
                                             rf"{len(GOOD) + 14} of the file\)"):
        load_file(path)
    dataset = load_file(path, on_bad_record="skip")
    assert len(dataset) == 2 and dataset.report.skipped == 1
    assert [dataset[i].query for i in range(2)] == ["q1", "q1"]


def test_non_utf8_in_a_json_file_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n{"query": "q", "positive": "p"},\n' + LATIN1.rstrip(b"\n") + b"\n]\n")
    with pytest.raises(BadRecordError, match=r"d.json:3: not valid UTF-8 \(byte 0xe9"):
        load_file(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_byte_order_mark_is_accepted(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    body = GOOD if suffix == ".jsonl" else b"[" + GOOD.strip() + b"]"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    dataset = load_file(path)
    assert dataset[0].query == "q1" and dataset[0].positive == "p1"


def test_a_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(GOOD * 50)[:40] + b"garbage" * 10)
    with pytest.raises(ValueError, match=r"d.jsonl.gz' is not a readable gzip file"):
        load_file(path)


def test_unknown_fields_are_reported_or_refused_with_strict(tmp_path, caplog):
    path = _jsonl(tmp_path / "d.jsonl", [{"query": f"q{i}", "positive": "p", "negatvie": "n"} for i in range(7)]
                  + [{"query": "q", "positive": "p", "negative": "n"}])
    with caplog.at_level("WARNING"):
        assert len(load_file(path)) == 8
    assert "unknown field 'negatvie' (did you mean 'negative'?) ignored in 7 records (first: 1, 2, 3, 4, 5)" \
        in caplog.text
    with pytest.raises(BadRecordError, match=r"d.jsonl:1: unknown field 'negatvie' \(did you mean 'negative'\?\)"):
        load_file(path, strict=True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_file(_jsonl(tmp_path / "clean.jsonl", [{"query": "q", "positive": "p", "negative": "n"}]))
    assert "unknown field" not in caplog.text  # negative control: known fields alone say nothing


def _with_repeats(tmp_path):
    """8 distinct records, then records 1 and 3 again (lines 9 and 10), record 1 once more (line 11)."""
    rows = [{"query": f"q{i}", "positive": f"p{i}", "negative": f"n{i}"} for i in range(8)]
    rows += [rows[1], rows[3], rows[1]]
    path = tmp_path / "repeats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_duplicate_records_are_reported_with_their_lines_and_kept(tmp_path, caplog):
    from poolattn.data.records import find_duplicates, handle_duplicates

    dataset = load_file(_with_repeats(tmp_path))
    assert find_duplicates(dataset) == [(8, 1), (9, 3), (10, 1)]
    with caplog.at_level("WARNING"):
        kept = handle_duplicates(dataset)
    assert len(kept) == 11 and kept.duplicates == 3
    assert "3 duplicate records kept" in caplog.text
    assert "repeats.jsonl:9 repeats repeats.jsonl:2" in caplog.text and "repeats.jsonl:11 repeats repeats.jsonl:2" in caplog.text
    assert "--on_bad_record skip" in caplog.text


def test_duplicate_records_are_dropped_with_skip(tmp_path, caplog):
    from poolattn.data.records import handle_duplicates

    with caplog.at_level("WARNING"):
        kept = handle_duplicates(load_file(_with_repeats(tmp_path)), on_bad_record="skip")
    assert [r.query for r in kept] == [f"q{i}" for i in range(8)] and kept.duplicates == 3
    assert "3 duplicate records dropped" in caplog.text


def test_the_bundled_training_set_has_no_duplicate_records():
    from poolattn.data.records import find_duplicates

    assert find_duplicates(bundled_training_set()) == []
