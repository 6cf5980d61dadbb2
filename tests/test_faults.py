"""Faults that must not lose or half-write anything: a full disk (a small tmpfs), two runs writing one output,
kill -9 at every moment of the final save, and an earlier run's checkpoint beside the output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import paircustom.files.safe_outputs as outputs
from paircustom.cli.main import main
from paircustom.errors import UserError
from paircustom.tiny.unet import build_tiny_pipeline
from paircustom.training.setup import check_run_files, check_run_inputs
from paircustom.training.trainer import PairTrainer, train_pair
from tests.conftest import RESOLUTION, fast_flags, quick_config, write_pair
from tests.helpers_bad_inputs import snapshot

ROOT = Path(__file__).resolve().parents[1]
FAST = fast_flags(2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SD folder, a pair and a style file trained on them."""
    root = tmp_path_factory.mktemp("faults")
    build_tiny_pipeline("sd").save_pretrained(root / "model")
    content, style = write_pair(root / "pair", size=(RESOLUTION, RESOLUTION))  # at the training size: no resize notice
    train_pair(
        quick_config(
            content, style, root / "art.safetensors", model=str(root / "model"), max_steps=2, style_start_step=1
        )
    )
    return root


def train_args(world, output, *extra):
    return [
        "train",
        str(world / "pair/content.png"),
        str(world / "pair/style.png"),
        "--subject",
        "dog",
        "--style",
        "art",
        "--model",
        str(world / "model"),
        "--output",
        str(output),
        *FAST,
        *extra,
    ]


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """Exit code and the stderr lines of ``paircustom argv`` run in this process."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err.splitlines()


# ---- a full disk ------------------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (root only; skipped where mounting is not permitted)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        handle = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(handle, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(handle)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


FULL_CASES = {
    "train": lambda w, f: train_args(w, f / "out.safetensors"),
    "train, checkpoint": lambda w, f: train_args(w, f / "out.safetensors", "--checkpoint-every", "1"),
    "train, content file": lambda w, f: train_args(w, f / "out.safetensors", "--save-content"),
    "generate": lambda w, f: [
        "generate",
        "a cat",
        "-s",
        w / "art.safetensors",
        "--model",
        w / "model",
        "--steps",
        "1",
        "--height",
        "32",
        "--width",
        "32",
        "--quiet",
        "-o",
        f / "cat.png",
    ],
    "stylize": lambda w, f: [
        "stylize",
        w / "pair/content.png",
        "-s",
        w / "art.safetensors",
        "--model",
        w / "model",
        "--steps",
        "2",
        "--resolution",
        "32",
        "--quiet",
        "-o",
        f / "s.png",
    ],
    "export": lambda w, f: ["export", w / "art.safetensors", "-o", f / "k.safetensors"],
}


@pytest.mark.parametrize("case", list(FULL_CASES))
def test_a_full_disk_is_one_line_and_leaves_nothing(case, world, full_disk, capsys):
    code, err = run_cli(FULL_CASES[case](world, full_disk), capsys)
    assert code == 2 and len(err) == 1 and "no space left on the device" in err[0], f"exit {code}: {err}"
    left = sorted(p.name for p in full_disk.iterdir())
    assert left == ["filler"], f"a full disk left {left}"


# ---- two writers of one output ----------------------------------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from paircustom.cli.main import main
from paircustom.training.trainer import PairTrainer
paused, go = Path(sys.argv[1]), Path(sys.argv[2])
step = PairTrainer.train_step
def wait_at_first_step(self):
    if self.step == 0:
        paused.write_text("holding the output")
        while not go.exists():
            time.sleep(0.05)
    return step(self)
PairTrainer.train_step = wait_at_first_step
sys.exit(main(sys.argv[3:]))
"""


def test_two_writers_of_one_output_exactly_one_wins(world, tmp_path, capsys):
    output = tmp_path / "shared.safetensors"
    argv = train_args(world, output)
    paused, go = tmp_path / "paused", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(paused), str(go), *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600  # a loaded machine may take minutes to get there
        while not paused.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not paused.exists():
            first.kill()
            pytest.fail(f"the first writer never started training: {first.communicate()[1][-2000:]}")
        code, err = run_cli(argv, capsys)  # the second writer, while the first holds the output
        assert code == 2 and len(err) == 1 and "another paircustom run (process" in err[0], f"exit {code}: {err}"
        go.write_text("go")
        out, first_err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0 and out.strip() == f"wrote {output}", f"the first writer: {first_err[-2000:]}"
    code, err = run_cli(argv, capsys)  # a third, after the first finished
    assert code == 2 and len(err) == 1 and "already exists" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "paused", "shared.safetensors"]


# ---- kill -9 during the final save of a set (style file + content file) -------------------------------------------

POINTS = 12  # 2 ticks (half written, written) for each of 3 files + 2 (before, after) for each of 3 renames


def hang_at(point: int, marker: Path) -> None:
    """In a forked child: stop forever at the ``point``-th moment of writing (see POINTS), after saying so."""
    ticks = [0]

    def tick():
        ticks[0] += 1
        if ticks[0] == point:
            marker.write_text("now")
            time.sleep(600)

    real_writer, real_replace = outputs._writer, os.replace

    def writer(data):
        write = real_writer(data)

        def half_then_all(temp):
            Path(temp).write_bytes(data[: len(data) // 2])
            tick()
            write(temp)
            tick()

        return half_then_all

    def replace(source, target):
        tick()
        real_replace(source, target)
        tick()

    outputs._writer, os.replace = writer, replace


def kill_during_save(trainer: PairTrainer, point: int, marker: Path) -> None:
    pid = os.fork()
    if pid == 0:  # the child saves and is killed; it never returns
        try:
            torch.set_num_threads(1)
            hang_at(point, marker)
            trainer.save()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 300
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert marker.exists(), f"the save never reached moment {point}"
    marker.unlink()


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """A finished 2-step run that also writes its content file, not yet saved."""
    config = quick_config(
        world / "pair/content.png",
        world / "pair/style.png",
        tmp_path_factory.mktemp("kill-set") / "art.safetensors",
        max_steps=2,
        style_start_step=1,
        save_content=True,
    )
    trainer = PairTrainer(config, build_tiny_pipeline("sd"))
    trainer.fit()
    yield trainer
    trainer.close()


@pytest.mark.parametrize("point", range(1, POINTS + 1))
def test_kill_during_the_final_save_leaves_a_whole_set_after_the_next_run(point, trained, tmp_path):
    trainer = trained
    trainer.config = replace(trainer.config, output=str(tmp_path / "art.safetensors"))
    kill_during_save(trainer, point, tmp_path / "marker")
    try:  # the next run of the same command: its checks (which finish or clean up) ...
        check_run_files(trainer.config, main=True)
        check_run_inputs(trainer.config)
        trainer.save()  # ... and, when nothing was there to refuse it, its final save (same weights)
    except UserError as refusal:  # the set was finished (or already whole): the run is refused, nothing redone
        assert "already exists" in str(refusal), refusal
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["art-content.safetensors", "art.safetensors"], f"killed at moment {point}, then rerun: {left}"
    for name in left:
        with open(tmp_path / name, "rb") as file:  # whole files: the header length fits the size
            size = int.from_bytes(file.read(8), "little")
            json.loads(file.read(size))


# ---- an earlier run's checkpoint beside the output ----------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--overwrite",), ("--checkpoint-every", "1"), ("--overwrite", "--steps", "3")])
def test_an_earlier_runs_checkpoint_is_left_untouched(extra, world, tmp_path, capsys):
    output = tmp_path / "art.safetensors"
    assert run_cli(train_args(world, output, "--checkpoint-every", "1"), capsys)[0] == 0
    before = snapshot(tmp_path)
    code, err = run_cli(train_args(world, output, *extra), capsys)
    assert code == 2 and len(err) == 1 and "checkpoint of an earlier run" in err[0], f"exit {code}: {err}"
    assert snapshot(tmp_path) == before, "the earlier run's files changed"
    output.unlink()  # even with the style file gone, the checkpoint stays its run's
    code, err = run_cli(train_args(world, output, *extra), capsys)
    assert code == 2 and "checkpoint of an earlier run" in err[0], err


def test_resume_extends_a_finished_run_with_the_default_style_start(world, tmp_path, capsys):
    """The README's promise: --resume --steps M continues a finished run whose style start was the default
    share of the steps (1 of 3 here; 6 steps would make it 2), keeping the style start it had."""
    output = tmp_path / "art.safetensors"
    argv = train_args(world, output, "--checkpoint-every", "3", "--steps", "3")
    at = argv.index("--style-start-step")
    argv = argv[:at] + argv[at + 2 :]  # the default style start
    assert run_cli(argv, capsys)[0] == 0
    code, err = run_cli([*argv, "--resume", "--steps", "6"], capsys)
    assert code == 0, err
    assert err == [
        "paircustom: warning: resuming at step 3 and training to 6 steps (the checkpoint was written for 3)."
    ], err
    from paircustom.files.style_file import read_adapter

    training = read_adapter(output)[1].training
    assert training["step"] == 6 and training["style_start"] == 1, training


def test_resume_without_a_checkpoint_says_it_starts_fresh(world, tmp_path, capsys):
    code, err = run_cli(train_args(world, tmp_path / "art.safetensors", "--resume"), capsys)
    assert code == 0 and len(err) == 1 and "--resume found no checkpoint" in err[0] and "step 0" in err[0], err
