"""`--help` says each flag's default, with plain metavars, in groups."""

from __future__ import annotations

import re

import pytest

from poolattn.cli import main
from poolattn.cli.train import FLAGS, SWITCHES


def _raw_help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _help(capsys, *command: str) -> str:
    return " ".join(_raw_help(capsys, *command).split())  # undo argparse's line wrapping


def _entries(raw: str) -> dict[str, str]:
    """{flag: its whole help entry}: an entry starts with a line "  --flag" and runs over its indented lines."""
    entries: dict[str, str] = {}
    current = None
    for line in raw.splitlines():
        if re.match(r"^  -", line):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


@pytest.mark.parametrize("command", ["train", "study"])
def test_train_help_shows_every_default_and_plain_metavars(capsys, command):
    raw = _raw_help(capsys, command)
    text = " ".join(raw.split())
    for phrase in ("--per_device_train_batch_size N records per device per forward (default: 8)",
                   "--learning_rate FLOAT peak learning rate (default: 1e-05)",
                   "--output_dir PATH where checkpoints and the final model go (default: runs/poolattn)",
                   "--max_seq_length N max tokens per text, EOS included (default: 512)",
                   "--num_latents N trainable pooling: number of latents (default: from --pooling_preset)",
                   "--bf16 [BOOL] bfloat16 autocast (default: on exactly when the weights are bfloat16)"):
        assert phrase in text, phrase
    entries = _entries(raw)
    for flag in [*FLAGS, *SWITCHES]:  # every flag says its default
        assert "default" in entries[flag], entries[flag]
    assert "TRAIN." not in text and "MODEL." not in text  # no dotted dest names as metavars
    positions = [text.index(f"{group} options:") for group in ("model", "loss", "data", "training", "evaluation")]
    assert positions == sorted(positions)
    assert text.index("--holdout N records") > positions[-1]  # the held-out check is an evaluation option


def test_encode_and_evaluate_help_show_defaults(capsys):
    assert "--batch-size N texts per forward pass (default: 32)" in _help(capsys, "encode")
    assert "--max_length N, --max-length N tokens per text" in _help(capsys, "evaluate")
