"""`poolattn study --dry-run` without the backbone (issue 19, point 5): the plan, no estimate, and exit 0."""

from __future__ import annotations

from poolattn.cli import main
from poolattn.config import Config, merge


def test_a_dry_run_whose_backbone_cannot_be_read_prints_the_plan_and_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = "no-such-org/no-such-model-7b"
    config = tmp_path / "unreadable.yaml"
    config.write_text(merge(Config(), {
        "model": {"backbone": backbone, "max_length": 32},
        "eval": {"tasks": ["PoolattnSimLex999WordSimilarity"]},
        "study": {"designs": [1, 5], "baseline": "1", "output_dir": str(tmp_path / "study")},
    }).to_yaml())
    assert main(["study", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert backbone in out.split("estimated_minutes")[0]  # the plan came first, naming the backbone
    assert "estimated_minutes=unknown" in out
    assert "no estimate is possible" in out and f"could not load backbone {backbone!r}" in out
    assert not (tmp_path / "study").exists()
