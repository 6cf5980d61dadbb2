"""Where we run: the device (``check_device``) and, under several processes (torchrun, accelerate launch), who we
are, who prints, and launcher pitfalls.

Semantics of training under N processes (see docs/training.md, "Several GPUs / several machines"):
every process holds the whole model and the same pair; process r draws its own (eps, t)
from a generator seeded with ``seed + r``; gradients are averaged over the processes
(DDP), so one optimizer step sees N x gradient_accumulation draws; the learning rate is
used as given unless ``scale_lr`` asks for lr x N.  Only process 0 writes files and prints.

The launcher sets RANK, LOCAL_RANK and WORLD_SIZE before our code runs, so these are read
from the environment: checks that must happen before any model loads (resuming with
another number of processes, output files) need them before accelerate starts.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .errors import UserError

# Environment variables by which launchers tell a process its place (torchrun/accelerate, then MPI).
WORLD_SIZE_KEYS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_KEYS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_KEYS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def _first_int(keys, default: int) -> int:
    for key in keys:
        if os.environ.get(key, "").strip().isdigit():
            return int(os.environ[key])
    return default


def world_size() -> int:
    return _first_int(WORLD_SIZE_KEYS, 1)


def rank() -> int:
    return _first_int(RANK_KEYS, 0)


def local_rank() -> int:
    return _first_int(LOCAL_RANK_KEYS, 0)


def is_main() -> bool:
    """Process 0 of the whole run: the one that writes files and prints results."""
    return rank() == 0


def prints_errors() -> bool:
    """The first process of each machine prints errors: bad input fails alike in every process of a machine
    (one line, not N), while a machine that lacks a file still says so."""
    return local_rank() == 0


def check_device(device: str | None) -> str:
    """The device to run on ("cuda" when there is one, else "cpu"); refuse one this machine lacks."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        raise UserError(f"the device must be text such as 'cpu' or 'cuda' (got {device!r:.40}).")
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise UserError(f"'{device}' is not a device; use cpu, cuda, cuda:1 or mps.") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, False):
        raise UserError(
            f"the device '{device}' is not available on this machine; use "
            f"{' or '.join(k for k, ok in available.items() if ok)}."
        )
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise UserError(f"there is no GPU {device} (this machine has {torch.cuda.device_count()}).")
    return device


def process_device(device: str) -> str:
    """Each process of a multi-GPU run takes its own GPU: "cuda" becomes "cuda:<local rank>"."""
    if world_size() > 1 and device == "cuda":
        return f"cuda:{local_rank()}"
    if world_size() > 1 and device.startswith("cuda:"):
        raise UserError(
            f"under {world_size()} processes every process would use {device}; give --device cuda and "
            "each process takes its own GPU (restrict them with CUDA_VISIBLE_DEVICES)."
        )
    return device


def die_with_launcher() -> None:
    """Linux: make this worker die when its launcher does (kill -9 of torchrun would otherwise leave the workers
    running on, still writing checkpoints and outputs, with nobody to stop them)."""
    if world_size() <= 1 or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher died before prctl took effect
        os._exit(1)


def relaunch_if_accelerate_dropped_processes() -> None:
    """``accelerate launch --cpu --num_processes N`` runs ONE process: with --cpu, accelerate always takes its
    simple launcher, which starts several processes only through mpirun (--mpirun_hostfile) and otherwise
    ignores --num_processes without a word. Its only trace is MASTER_ADDR without WORLD_SIZE. Here we read N
    from the launch command (our parent) and re-run this command under torchrun with N processes on this
    machine; when N cannot be read, or several machines were asked for, we say what to run instead."""
    env = os.environ
    if (
        env.get("ACCELERATE_USE_CPU", "").lower() != "true"
        or "MASTER_ADDR" not in env
        or any(key in env for key in WORLD_SIZE_KEYS + RANK_KEYS + ("LOCAL_RANK",))
    ):
        return
    processes, machines = _accelerate_request()
    if machines > 1:
        raise UserError(
            "accelerate launch --cpu runs one process per machine unless mpirun is used "
            "(--mpirun_hostfile); on several CPU machines run 'torchrun --nnodes ... -m paircustom ...' "
            "on each machine instead."
        )
    if processes is None:
        raise UserError(
            "accelerate launch --cpu starts only one process without mpirun, and the number asked "
            "for cannot be read here; run 'torchrun --nproc_per_node N -m paircustom ...' instead."
        )
    if processes <= 1:
        return
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "--no-python",
        sys.executable,
        *sys.orig_argv[1:],
    ]
    child_env = {k: v for k, v in env.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, child_env)


def _accelerate_request() -> tuple[int | None, int]:
    """(--num_processes, --num_machines) of the ``accelerate launch`` command that started us (our parent)."""
    try:
        argv = [a.decode() for a in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")[:-1]]
        from accelerate.commands.config import default_config_file, load_config_from_file
        from accelerate.commands.launch import launch_command_parser

        start = next(i for i, a in enumerate(argv) if a == "launch" or a.endswith(("commands.launch", "launch.py")))
        args = launch_command_parser().parse_args(argv[start + 1 :])
        config = None
        if args.config_file is not None or os.path.isfile(default_config_file):
            config = load_config_from_file(args.config_file)
        processes = args.num_processes if args.num_processes is not None else getattr(config, "num_processes", None)
        machines = args.num_machines if args.num_machines is not None else getattr(config, "num_machines", 1)
        return processes, machines or 1
    except (OSError, ValueError, AttributeError, StopIteration, SystemExit, UnicodeDecodeError):
        return None, 1
