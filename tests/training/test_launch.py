"""Real multi-process launches of `poolattn train` on CPU (slow: process start-up, and DeepSpeed's op build).

torchrun gives 2 gloo ranks with DDP; the contrastive batch must span both (2 per device x 2 accumulation x
2 processes = 8). When DeepSpeed is installed, ZeRO-2 through accelerate must reach the same weights as DDP.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_train import _data

pytestmark = pytest.mark.slow

ARGS = ["train", "--design", "5", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
        "--max_steps", "3", "--save_steps", "3", "--max_seq_length", "32", "--logging_steps", "1",
        "--disable_tqdm", "--lora_dropout", "0", "--learning_rate", "1e-3", "--loss_scale", "20"]

ACCELERATE_DEEPSPEED = """compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
deepspeed_config: {zero_stage: 2, offload_optimizer_device: none, offload_param_device: none, zero3_init_flag: false}
mixed_precision: 'no'
num_machines: 1
num_processes: 2
machine_rank: 0
use_cpu: true
"""


def _launch(prefix: list[str], tiny, data, out) -> None:
    command = [*prefix, "-m", "poolattn", *ARGS, "--model_name_or_path", str(tiny), "--dataset_file_path", str(data),
               "--output_dir", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_torchrun_two_processes_share_one_contrastive_batch(tiny_llama, tmp_path):
    out = tmp_path / "ddp"
    _launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"], tiny_llama, _data(tmp_path), out)
    summary = json.loads((out / "train_summary.json").read_text())
    logged = [e for e in summary["log_history"] if "loss" in e]
    assert summary["contrastive_batch"] == 8 and all(e["contrastive_batch"] == 8 for e in logged)
    assert (out / "checkpoint-3" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed ([deepspeed] extra)")
@pytest.mark.skipif(shutil.which("accelerate") is None and importlib.util.find_spec("accelerate") is None,
                    reason="accelerate is not installed")
def test_deepspeed_zero2_matches_ddp(tiny_llama, tmp_path):
    data = _data(tmp_path)
    _launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"], tiny_llama, data, tmp_path / "ddp")
    (tmp_path / "acc.yaml").write_text(ACCELERATE_DEEPSPEED)
    _launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "acc.yaml")],
            tiny_llama, data, tmp_path / "ds")
    ddp = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    ds = load_file(str(tmp_path / "ds" / "adapter" / "adapter_model.safetensors"))
    for name in ddp:
        torch.testing.assert_close(ds[name], ddp[name], rtol=0, atol=1e-5, msg=name)
