"""MULTI-PROCESS TESTS: each spawns 2 CPU processes (torchrun, or accelerate launch, with gloo) on the tiny SD model.

Marked ``multiprocess`` (``-m "not multiprocess"`` skips them). One launch trains the reference run through
``accelerate launch --cpu --num_processes 2`` (which by itself starts one process; paircustom relaunches it under
torchrun), one more is killed with SIGKILL and one resumes it, one generates. Each rank dumps its adapter weights
through the child script below, so the test can compare the ranks with each other, with the written file and with
a single-process step computed here from the same (eps, t) draws.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from paircustom.cli.main import main
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.objective import pair_losses
from paircustom.training.trainer import PairTrainer
from tests.conftest import quick_config, write_pair

pytestmark = pytest.mark.multiprocess
ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, os, sys, time
from pathlib import Path
from safetensors.torch import save_file
from paircustom.cli.main import main
from paircustom.files.style_file import lora_state_dict
from paircustom.training.trainer import PairTrainer

args = json.loads(sys.argv[1])
rank, dump = int(os.environ.get("RANK", 0)), Path(args["dump"])   # no RANK yet: before a relaunch
Path(dump / f"pid-{rank}").write_text(str(os.getpid()))

def weights(trainer):
    return {str(i): p.detach().cpu().clone() for i, p in enumerate(trainer.content_params + trainer.style_params)}

step = PairTrainer.train_step
def train_step(self):
    if rank == 0 and self.step == args.get("hang_at"):
        (dump / "hanging").write_text("now")
        time.sleep(600)
    result = step(self)
    if self.step == 1:
        save_file(weights(self), str(dump / f"step1-{rank}.safetensors"))
    return result

close = PairTrainer.close
def close_and_dump(self):
    style = lora_state_dict({n: l.style_A for n, l in self.layers.items()},
                            {n: l.style_B for n, l in self.layers.items()},
                            next(iter(self.layers.values())).style_scale)
    save_file(weights(self), str(dump / f"final-{rank}.safetensors"))
    save_file(style, str(dump / f"style-{rank}.safetensors"))
    close(self)

PairTrainer.train_step, PairTrainer.close = train_step, close_and_dump
sys.exit(main(args["argv"]))
"""
STEPS, ACCUMULATION = 4, 2
TRAIN = [
    "--subject",
    "dog",
    "--style",
    "digital art",
    "--rank",
    "4",
    "--lr",
    "1e-2",
    "--steps",
    str(STEPS),
    "--style-start-step",
    "1",
    "--accumulation",
    str(ACCUMULATION),
    "--resolution",
    "32",
    "--checkpoint-every",
    "2",
    "--quiet",
    "--scale-lr",
]  # --scale-lr: 2 processes train with 2 x --lr (checked on the first step)


def read(path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()


def environment() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACCELERATE_", "MASTER_", "WORLD_SIZE", "RANK", "LOCAL_RANK"))
    }
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def launch(launcher: list[str], folder: Path, argv: list[str], wait: bool = True, **extra):
    """Run the child script (it calls paircustom's main with ``argv``) in 2 processes; dumps go to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    child = folder / "child.py"
    child.write_text(CHILD)
    command = [*launcher, str(child), json.dumps({"argv": argv, "dump": str(folder), **extra})]
    process = subprocess.Popen(
        command, cwd=folder, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return process
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"{' '.join(launcher)} failed ({process.returncode}):\n{err[-3000:]}"
    return out, err


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The reference run: accelerate launch --cpu --num_processes 2, 4 steps, style from step 1, checkpoints."""
    root = tmp_path_factory.mktemp("ddp")
    build_tiny_pipeline("sd").save_pretrained(root / "model")
    content, style = write_pair(root / "pair")
    accelerate = shutil.which("accelerate")
    assert accelerate, "the accelerate command is not installed"
    argv = ["train", str(content), str(style), "--model", str(root / "model"), "-o", "style.safetensors", *TRAIN]
    out, err = launch([accelerate, "launch", "--cpu", "--num_processes", "2"], root / "run", argv)
    return dict(root=root, content=content, style=style, argv=argv, out=out, err=err, dump=root / "run")


def test_two_processes_ran_and_only_process_0_wrote_and_printed(run):
    dump = run["dump"]
    assert (dump / "final-0.safetensors").is_file() and (dump / "final-1.safetensors").is_file(), (
        f"accelerate launch --cpu --num_processes 2 did not run 2 processes: {sorted(p.name for p in dump.iterdir())}"
    )
    wrote = [line for line in run["out"].splitlines() if line.startswith("wrote")]
    assert wrote == ["wrote style.safetensors"], f"expected one 'wrote' line, got: {run['out']!r}"
    assert "find_unused_parameters" not in run["err"], "DDP still searches for unused parameters"
    tensors, metadata = read(dump / "style.safetensors")
    training = json.loads(metadata["paircustom"])["training"]
    assert (training["processes"], training["effective_learning_rate"]) == (2, 2e-2), training


def test_both_ranks_hold_bitwise_equal_weights_and_the_file_is_rank_0s(run):
    dump = run["dump"]
    (rank0, _), (rank1, _) = read(dump / "final-0.safetensors"), read(dump / "final-1.safetensors")
    assert rank0.keys() == rank1.keys()
    differ = [key for key in rank0 if not torch.equal(rank0[key], rank1[key])]
    assert not differ, f"{len(differ)} of {len(rank0)} adapter tensors differ between the ranks, e.g. {differ[0]}"
    assert all(rank0[key].abs().max() > 0 for key in rank0), "some adapter never trained (style B's after warm-up?)"
    written, _ = read(dump / "style.safetensors")
    style0, _ = read(dump / "style-0.safetensors")
    assert written.keys() == style0.keys()
    differ = [key for key in written if not torch.equal(written[key], style0[key])]
    assert not differ, f"the written file differs from rank 0's style weights in {differ[:3]}"


def test_first_step_equals_a_single_process_step_on_the_mean_gradient(run):
    """Rank r draws from seed + r; DDP averages: one step on (g0 + g1) / 2 computed here from the same draws, at
    --scale-lr's 2 x lr."""
    root = run["root"]
    config = quick_config(
        run["content"],
        run["style"],
        root / "single.safetensors",
        model=str(root / "model"),
        max_steps=STEPS,
        style_start_step=1,
        gradient_accumulation=ACCUMULATION,
    )
    trainer = PairTrainer(config)
    params = trainer.content_params + trainer.style_params
    kinds = trainer.kinds(0)
    gradients = []
    for rank in (0, 1):
        generator = torch.Generator().manual_seed(config.seed + rank)
        for param in params:
            param.grad = None
        for _ in range(ACCUMULATION):
            losses = pair_losses(
                trainer.denoiser,
                trainer.layers,
                trainer.noise_scheduler,
                trainer.pair,
                kinds,
                generator,
                trainer.family,
            )
            (sum(losses.values()) / ACCUMULATION).backward()
        gradients.append([None if p.grad is None else p.grad.clone() for p in params])
    before = [p.detach().clone() for p in params]

    def step_on(grads):
        with torch.no_grad():
            for param, value, grad in zip(params, before, grads):
                param.copy_(value)
                param.grad = grad
        optimizer = torch.optim.AdamW(params, lr=2 * config.learning_rate, weight_decay=config.weight_decay)
        optimizer.step()
        return [p.detach().clone() for p in params]

    mean_gradients = [None if a is None else (a + b) / 2 for a, b in zip(*gradients)]
    mean = step_on(mean_gradients)
    rank0_only = step_on(gradients[0])
    trainer.close()
    two, _ = read(run["dump"] / "step1-0.safetensors")
    # AdamW's first step moves each weight by lr g / (|g| + eps): where |g| is within a few eps (1e-8) of zero it
    # magnifies the float rounding of g (summation order differs between DDP's all-reduce and (a + b) / 2) by
    # eps / (|g| + eps)^2, so those weights are compared only where the gradient is at least 100 eps.
    steady = [
        torch.ones_like(p, dtype=torch.bool) if g is None else g.abs() >= 1e-6 for p, g in zip(params, mean_gradients)
    ]
    share = sum(int(m.sum()) for m in steady) / sum(m.numel() for m in steady)
    assert share > 0.9, f"only {share:.1%} of the weights have a gradient clear of AdamW's eps"
    error = max((two[str(i)] - mean[i])[steady[i]].abs().max().item() for i in range(len(params)))
    assert error <= 1e-5, f"the 2-process first step is {error:.2e} from a step on the mean gradient (tolerance 1e-5)"
    apart = max((two[str(i)] - rank0_only[i]).abs().max().item() for i in range(len(params)))
    assert apart > 1e-4, f"rank 0's own gradient gives the same step ({apart:.2e}): the check cannot tell them apart"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_kill_9_of_the_launcher_then_resume_continues_from_the_checkpoint(run, tmp_path):
    """Rank 0 stops at step 3 (after the step-2 checkpoint); kill -9 of torchrun takes its workers with it;
    resuming under torchrun writes the reference run's file bitwise."""
    folder = tmp_path / "killed"
    process = launch(TORCHRUN, folder, run["argv"], wait=False, hang_at=3)
    try:
        deadline = time.monotonic() + 240
        while not (folder / "hanging").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (folder / "hanging").exists(), (
            f"the run never reached step 3: {process.poll()} {process.stderr.read()[-2000:]}"
        )
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    workers = [int((folder / f"pid-{rank}").read_text()) for rank in (0, 1)]
    deadline = time.monotonic() + 60
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "the workers kept running after their launcher was killed"
    assert not (folder / "style.safetensors").exists(), "the output was written before the run finished"
    header = json.loads(read(folder / "style.checkpoint.safetensors")[1]["paircustom_checkpoint"])
    assert (header["step"], header["num_processes"]) == (2, 2), (
        f"checkpoint at {header['step']}, {header['num_processes']}"
    )

    launch(TORCHRUN, folder, run["argv"] + ["--resume"])
    (tensors, metadata), (expected, expected_metadata) = (
        read(folder / "style.safetensors"),
        read(run["dump"] / "style.safetensors"),
    )
    assert tensors.keys() == expected.keys() and metadata == expected_metadata
    differ = [key for key in tensors if not torch.equal(tensors[key], expected[key])]
    assert not differ, f"resumed after kill -9: {len(differ)} tensors not bitwise equal to the uninterrupted run's"


def test_two_process_generation_writes_the_same_8_pngs_as_one_process(run, tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\n# not a prompt\n\na red house\na photo of a dog\na blue car at night\n")
    argv = [
        "generate",
        "--prompts-file",
        str(prompts),
        "--seeds",
        "0-1",
        "-s",
        str(run["dump"] / "style.safetensors"),
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
    ]
    out, err = launch(TORCHRUN, tmp_path / "two", argv + ["-o", str(tmp_path / "two" / "img.png")])
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["-o", str(tmp_path / "one" / "img.png")]) == 0
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").glob("*.png")}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").glob("*.png")}
    assert len(one) == 8 and sorted(two) == sorted(one), f"1 process: {sorted(one)}\n2 processes: {sorted(two)}"
    assert [name for name in one if one[name] != two[name]] == [], "images differ between 1 and 2 processes"
    # each process prints its own lines, so two lines can interleave on the shared pipe: count the words
    assert out.count("wrote ") == 8, out
    assert "img-002-a-photo-of-a-dog-s1.png" in one
