"""`--report_to tensorboard` writes event files that TensorBoard's own reader reads back."""

from __future__ import annotations

import json

from poolattn.cli import main


def test_tensorboard_events_hold_the_training_scalars(tiny_llama, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [{"query": f"question {i}", "positive": f"answer {i}"} for i in range(8)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    code = main(["train", "--design", "1", "--model_name_or_path", str(tiny_llama), "--dataset_file_path", str(data),
                 "--output_dir", str(out), "--max_steps", "2", "--logging_steps", "1", "--per_device_train_batch_size",
                 "2", "--gradient_accumulation_steps", "2", "--loss_scale", "20", "--max_seq_length", "16",
                 "--lora_r", "2", "--disable_tqdm", "--report_to", "tensorboard"])
    assert code == 0
    (log_dir,) = [p.parent for p in out.rglob("events.out.tfevents.*")]
    events = EventAccumulator(str(log_dir))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    history = [e for e in json.loads((out / "train_summary.json").read_text())["log_history"] if "loss" in e]
    # the same numbers the trainer logged, read back through TensorBoard's own reader
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert [round(v, 4) for _, v in scalars["train/loss"]] == [round(e["loss"], 4) for e in history]
    assert [round(v, 10) for _, v in scalars["train/learning_rate"]] == [round(e["learning_rate"], 10) for e in history]
    assert [v for _, v in scalars["train/loss_scale"]] == [20.0, 20.0]
    assert [v for _, v in scalars["train/contrastive_batch"]] == [4.0, 4.0]  # 2 per device x 2 accumulated
    assert "model_config" in " ".join(events.Tags()["tensors"])
