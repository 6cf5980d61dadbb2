"""Ctrl-C on the command line: exit code 130 and one line, at any moment (importing, loading, training, writing).

Python turns SIGINT into a ``KeyboardInterrupt`` in whatever the main thread runs; where that is a callback
whose exceptions are ignored (a ``ThreadPoolExecutor``'s weakref callback while a model loads its weights), the
interrupt is printed as "Exception ignored in ..." and the run carries on.  So the handler here also starts a
watchdog: if the process is still alive ``GRACE_SECONDS`` after Ctrl-C, it prints the line and ends the process
with code 130, letting go of its output locks first.  Files are written under temporary names and renamed
(``atomic_write``), so no output is left half-written either way; a second Ctrl-C, or one while the modules
import (nothing to unwind yet), ends the process at once.

Only the command line installs this (``install_for_program``, ``handling``); the Python API keeps Python's
default handling.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

GRACE_SECONDS = 3.0  # after Ctrl-C, how long the interrupted code may take to unwind before the process is ended
EXIT_CODE = 130  # 128 + SIGINT, as shells report it

_interrupted = threading.Event()
_in_command = threading.Event()  # set within ``handling``: a KeyboardInterrupt unwinds the command
_reported = threading.Event()
_report_lock = threading.Lock()
_training: dict = {}  # step, max_steps, checkpoint_every of a running `train` (set by ``note_training_step``)


def note_training_step(step: int, max_steps: int, checkpoint_every: int) -> None:
    """Record how far training is, for the line printed on Ctrl-C."""
    _training.update(step=step, max_steps=max_steps, checkpoint_every=checkpoint_every)


def message() -> str:
    """The line for Ctrl-C: during training, how far it got and how to keep the work next time."""
    if not _training:
        return "paircustom: interrupted."
    step, total, every = _training["step"], _training["max_steps"], _training["checkpoint_every"]
    where = f"paircustom: interrupted at step {step} of {total}"
    if every and step >= every:
        kept = step // every * every
        return f"{where}; run the same command with --resume to continue from the checkpoint of step {kept}."
    if every:
        return f"{where}, before the first checkpoint (step {every}); nothing was kept."
    return (
        f"{where}; nothing was kept. Add --checkpoint-every N (e.g. {max(total // 10, 1)}) to save checkpoints, "
        "and --resume to continue from the latest after an interruption."
    )


def report() -> None:
    """Print the Ctrl-C line once (from whichever comes first: the unwinding command or the watchdog)."""
    with _report_lock:
        if not _reported.is_set():
            _reported.set()
            print("\n" * _bar_on_screen() + message(), file=sys.stderr, flush=True)


def _bar_on_screen() -> bool:
    """Whether a progress bar (tqdm: ours, diffusers', transformers') holds the cursor at the end of its line."""
    tqdm = sys.modules.get("tqdm")
    return bool(tqdm is not None and getattr(tqdm.tqdm, "_instances", None))


def _end_now() -> None:
    report()
    outputs = sys.modules.get("paircustom.files.safe_outputs")  # not imported yet: no lock to let go of
    if outputs is not None:
        outputs.release_held_locks()  # os._exit unwinds nothing: the output locks' files would stay
    os._exit(EXIT_CODE)


def _on_sigint(signum, frame) -> None:
    if _interrupted.is_set() or not _in_command.is_set():  # a second Ctrl-C, or while importing: nothing to unwind
        _end_now()
    _interrupted.set()
    watchdog = threading.Timer(GRACE_SECONDS, _end_now)
    watchdog.daemon = True
    watchdog.start()
    raise KeyboardInterrupt


@contextmanager
def handling():
    """Within: Ctrl-C ends the command with code 130 and one line (the previous handler is restored after)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return
    for state in (_interrupted, _reported, _training):  # a fresh command (tests call main() several times)
        state.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _in_command.set()
    try:
        yield
    except Exception:  # what a library made of the KeyboardInterrupt
        if not _interrupted.is_set():
            raise
    except KeyboardInterrupt:
        pass
    finally:
        _in_command.clear()
        signal.signal(signal.SIGINT, previous)
    if _interrupted.is_set():  # also when a library caught the KeyboardInterrupt and carried on
        report()
        raise SystemExit(EXIT_CODE)


def install_for_program() -> None:
    """Handle Ctrl-C from the start when paircustom is the program (``python -m paircustom`` or the console
    script), so that it is one line even while the modules import; not when another program imports us."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = (spec.name if spec is not None else None) == "paircustom.__main__" or os.path.basename(
        getattr(main, "__file__", "") or ""
    ) == "paircustom"
    if program and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
