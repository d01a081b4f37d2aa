"""`poolattn data build --check`'s comparison, the data card's Baselines carry-over and the CLI wiring."""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

import pytest

from poolattn.cli import data as data_cli
from poolattn.databuild import card, check
from poolattn.databuild.build import build as build_data

RESOURCES = Path(__file__).resolve().parents[2] / "src" / "poolattn" / "resources"


def _copy_artifacts(dst: Path) -> Path:
    for rel in ("train", "suite"):
        shutil.copytree(RESOURCES / rel, dst / rel)
    for rel in ("DATA_CARD.md", "build_summary.json"):
        shutil.copy2(RESOURCES / rel, dst / rel)
    return dst


def test_check_reports_nothing_for_identical_builds(tmp_path):
    copy = _copy_artifacts(tmp_path / "copy")
    assert check(RESOURCES, copy) == []


def test_check_compares_gzip_content_not_bytes(tmp_path):
    copy = _copy_artifacts(tmp_path / "copy")
    target = copy / "suite" / "manifest.json"
    entries = json.loads(target.read_text())
    task_file = copy / "suite" / entries[0]["file"]
    content = gzip.decompress(task_file.read_bytes())
    task_file.write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))  # other bytes, same content
    assert check(RESOURCES, copy) == []
    task_file.write_bytes(gzip.compress(content.replace(b'"', b"'", 1)))
    assert check(RESOURCES, copy) == [f"suite/{entries[0]['file']}: content differs"]


def test_check_reports_missing_and_extra_files(tmp_path):
    copy = _copy_artifacts(tmp_path / "copy")
    (copy / "train" / "triples.jsonl.gz").unlink()
    (copy / "suite" / "PoolattnExtraTask.json.gz").write_bytes(gzip.compress(b"{}"))
    assert check(RESOURCES, copy) == ["suite/PoolattnExtraTask.json.gz: rebuilt but not committed",
                                      "train/triples.jsonl.gz: committed but not rebuilt"]


def test_card_keeps_a_filled_baselines_section_and_check_ignores_it(tmp_path):
    copy = _copy_artifacts(tmp_path / "copy")
    path = copy / "DATA_CARD.md"
    committed = path.read_text()
    section = f"{card.BASELINES}\n\n| model | mean |\n| --- | --- |\n| minilm | 0.61 |\n"
    filled = card.with_baselines(committed, section + "\n")  # trailing blank lines are trimmed to one newline
    assert filled != committed and filled.endswith(section)
    assert card.without_baselines(filled) == card.without_baselines(committed)
    path.write_text(filled)
    assert check(RESOURCES, copy) == []
    summary = json.loads((copy / "build_summary.json").read_text())
    rerendered = card.render(summary, previous=filled)
    assert "| minilm | 0.61 |" in rerendered
    assert "none yet" in card.render(summary, previous=None)


def test_cli_parses_build_flags_and_check_exit_codes(tmp_path, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    args = parser.parse_args(["build", "--out", str(tmp_path), "--check", "--no-progress", "--sources", "trec"])
    assert args.action == "build" and args.check and args.sources == ["trec"] and args.out == tmp_path

    def fake_build(out_dir, work_dir=None, *, sources=None, progress=True):
        (Path(out_dir) / "suite").mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "suite" / "manifest.json").write_text("[]\n")
        return {}

    monkeypatch.setattr("poolattn.databuild.build", fake_build)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "manifest.json").write_text("[]\n")
    assert data_cli.run(args) == 0
    assert "match a fresh build" in capsys.readouterr().out
    (tmp_path / "suite" / "manifest.json").write_text('[{"name": "x"}]\n')
    assert data_cli.run(args) == 1
    assert "suite/manifest.json: content differs" in capsys.readouterr().out


def test_build_rejects_unknown_sources(tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        build_data(tmp_path, tmp_path, sources=["msmarco"])


def test_with_baselines_replaces_only_that_section_and_names_bad_input():
    text = "# Card\n\n## Baselines\n\nold\n\n## Later\n\nkept \\1\n"
    section = "## Baselines\n\n| a \\1 | b |\n\n"
    assert card.with_baselines(text, section) == "# Card\n\n## Baselines\n\n| a \\1 | b |\n\n## Later\n\nkept \\1\n"
    with pytest.raises(ValueError, match="starts with '## Baselines' on its own line"):
        card.with_baselines(text, "| a | b |\n")
    with pytest.raises(ValueError, match="has no '## Baselines' section"):
        card.with_baselines("# Card\n", section)
