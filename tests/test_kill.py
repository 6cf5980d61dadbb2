"""kill -9 at any moment of training, then --resume: bitwise the same weights as a run never interrupted, and no
partial file left (checkpoints and outputs are written to a temporary name and renamed)."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.trainer import train_pair
from tests.conftest import quick_config, write_pair

ROOT = Path(__file__).resolve().parents[1]
# Run training in a child that stops forever at the chosen moment (after writing half a file, for the saves)
# and says so through the marker file; the test then kills it with SIGKILL.
CHILD = """
import json, sys, time
from pathlib import Path
import torch
import paircustom.files.safe_outputs as outputs
from paircustom.training.trainer import PairTrainer, TrainConfig, train_pair
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])   # float sums depend on the thread count; match the parent's
def hang():
    Path(args["marker"]).write_text("now")
    time.sleep(600)
if args["die"] == "training":
    step = PairTrainer.train_step
    PairTrainer.train_step = lambda self: hang() if self.step == args["at"] else step(self)
else:
    real, calls = outputs._writer, []
    def writer(data):
        write = real(data)
        def half_write(temp):
            write(temp)
            kind = "checkpoint save" if ".checkpoint" in Path(temp).name else "final save"
            calls.append(kind)
            if calls.count(args["die"]) == args["at"] and kind == args["die"]:
                Path(temp).write_bytes(Path(temp).read_bytes()[: len(data) // 2])
                hang()
        return half_write
    outputs._writer = writer
train_pair(TrainConfig(**args["config"]))
"""
KILLS = {"training": 3, "checkpoint save": 2, "final save": 1}  # step 3 of 5 / 2nd checkpoint (step 4) / the output


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    build_tiny_pipeline("sd").save_pretrained(root / "model")
    content, style = write_pair(root)
    config = quick_config(
        content,
        style,
        root / "reference.safetensors",
        model=str(root / "model"),
        max_steps=5,
        style_start_step=2,
        gradient_accumulation=2,
        checkpoint_every=2,
    )
    return config, read(train_pair(config))


def read(path):
    """Tensors and header; the bytes may differ, as safetensors writes the header's keys in hash order."""
    with safe_open(str(path), framework="pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()


@pytest.mark.parametrize("moment", list(KILLS))
def test_kill_then_resume_gives_the_same_bytes(moment, setup, tmp_path):
    reference_config, reference = setup
    output = tmp_path / "reference.safetensors"  # same name: the file records nothing else about its path
    config = replace(reference_config, output=str(output))
    marker = tmp_path / "marker"
    args = json.dumps(
        {
            "config": asdict(config),
            "die": moment,
            "at": KILLS[moment],
            "marker": str(marker),
            "threads": torch.get_num_threads(),
        }
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 600  # a loaded machine may take minutes to get there
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        reached = marker.exists()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        errors = child.stderr.read()[-2000:]  # only now: reading a live child's pipe would block
        child.stderr.close()
    assert reached, f"the child never reached the {moment}: exit {child.returncode} {errors}"
    marker.unlink()
    temp = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert bool(temp) == (moment != "training"), f"after a kill during {moment}: temporary files {temp}"
    assert not output.exists(), "the output was written before the run finished"

    train_pair(replace(config, resume=True))
    (tensors, metadata), (expected, expected_metadata) = read(output), reference
    assert tensors.keys() == expected.keys() and metadata == expected_metadata
    differ = [key for key in tensors if not torch.equal(tensors[key], expected[key])]
    assert not differ, (
        f"resumed after a kill during {moment}: {len(differ)} tensors not bitwise equal, e.g. {differ[0]}"
    )
    left = sorted(p.name for p in tmp_path.iterdir())  # the last checkpoint stays, for extending the run
    assert left == ["reference.checkpoint.safetensors", "reference.safetensors"], f"left behind: {left}"
