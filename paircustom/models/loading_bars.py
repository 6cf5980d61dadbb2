"""diffusers' "Loading pipeline components" and transformers' "Loading weights" bars only where they help: on a
terminal, for models large enough to take a while (a hub model, or a local folder of ``BARS_FROM_BYTES`` or more).
The embedded 24 MB model loads in a blink, and in a log file a bar is only noise."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

BARS_FROM_BYTES = 1_000_000_000  # local folders smaller than this load without bars
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".gguf")


def worth_bars(path: str | Path, stream=None) -> bool:
    """Whether loading ``path`` (a folder, or a hub id) should show the libraries' progress bars on ``stream``."""
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        return False
    folder = Path(path)
    if not folder.is_dir():
        return True  # a hub id: large, and maybe downloading
    weights = (f.stat().st_size for f in folder.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    return sum(weights) >= BARS_FROM_BYTES


def loading_bars_for(path: str | Path):
    """Within: no loading bars where ``worth_bars`` says no (bars already switched off stay off); as before, after."""
    return loading_bars(None if worth_bars(path) else False)


@contextmanager
def loading_bars(enabled: bool | None):
    """Within: diffusers' and transformers' model-loading bars on (True), off (False, e.g. for ``--quiet``) or as
    they are (None); as they were, afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [diffusers_logging, transformers_logging]
    before = [library.is_progress_bar_enabled() for library in libraries]
    if enabled is not None:
        for library in libraries:
            library.enable_progress_bar() if enabled else library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was in zip(libraries, before):
            library.enable_progress_bar() if was else library.disable_progress_bar()
