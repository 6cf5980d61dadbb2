"""How many CPU threads torch uses for ``train``, ``generate`` and ``stylize``: ``--threads N``, else a policy
by model size.

A small denoiser (the embedded shapes model, test-sized models: under ``SMALL_MODEL_BYTES`` of weights) does
too little work per layer for several threads to pay: its matrix products are split into pieces so small
that the threads spend their time waiting for each other, and on a machine whose other cores are busy a
thread that is not scheduled stalls every step (benchmarks/threads_under_load.py and
benchmarks/results/threads_under_load.md measure it).  It gets one thread.  A larger model keeps torch's
default (one thread per core), where the work per layer is large enough to share.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..config.checks import check_number
from ..config.validate import arg

SMALL_MODEL_BYTES = 200 * 2**20  # weights of the denoiser on disk; the shapes model's UNet is ~10 MB
DENOISERS = ("unet", "transformer")


def denoiser_bytes(model: str) -> int | None:
    """Size of a local model's denoiser weights ("shapes" included); None for a hub id (not known before loading)."""
    from ..config.model_names import resolve_model

    folder = Path(resolve_model(model)[0])
    if not folder.is_dir():
        return None
    for name in DENOISERS:
        if (folder / name).is_dir():
            return sum(p.stat().st_size for p in (folder / name).iterdir() if p.suffix == ".safetensors")
    return None


def thread_count(requested: int | None, model: str) -> int | None:
    """The threads to use: ``requested`` if given (checked), 1 for a small local model, else None (torch's)."""
    if requested is not None:
        check_number(arg("threads"), requested, 1, 1024, integer=True, hint="; e.g. 1 for small models")
        return requested
    size = denoiser_bytes(model)
    return 1 if size is not None and size < SMALL_MODEL_BYTES else None


@contextmanager
def threads_for(requested: int | None, model: str):
    """torch's thread count set by ``thread_count`` for the duration (as it was, afterwards)."""
    import torch

    count, before = thread_count(requested, model), torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)


def add_threads_option(parser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: 1 for small models such as 'shapes', else one per core)",
    )
