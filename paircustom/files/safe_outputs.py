"""Writing outputs without losing anything: never onto an input, one writer per output, sets of files that
appear together, a full disk reported in one sentence.

- ``check_not_input``: an output that is one of the run's inputs is refused, even with --overwrite.
- ``OutputLock``: ``.<name>.lock`` beside each output, held (``flock``) from the last check to the last rename;
  a second run for the same output is refused in one sentence.  The lock file goes when the run ends; one
  left by a killed run is free (the kernel drops the lock) and is reused.
- ``write_set``: files that belong together (a style file and its content files) are written to temporary
  names first, then a journal ``.<first>.saving.json`` names the renames, then they are renamed; the next run
  (``finish_interrupted_set``) completes the renames of a journal left by a kill, so the set appears whole.
- ``saver``: safetensors written by us to our temporary name (safetensors' own ``save_file`` makes a
  temporary file of its own that a kill would orphan under a name no one can safely clean up).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from ..errors import UserError, disk_full, full_disk_error

_held: dict[str, list] = {}  # lock path -> [file descriptor, holders in this process]


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(outputs, inputs) -> None:
    """Refuse an output that is one of the ``inputs`` ((role, path) pairs), whatever --overwrite says."""
    for output in outputs:
        for role, path in inputs:
            if path is not None and same_file(output, path):
                raise UserError(
                    f"the output '{output}' is the {role} '{path}' itself; write to another file "
                    "(an input is never replaced, not even with --overwrite)."
                )


def _writer(data: bytes):
    def write(temp):
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    return write


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    from .images import atomic_write

    return atomic_write(path, _writer(data))


def saver(tensors: dict, metadata: dict[str, str] | None = None):
    """``write(temp)`` for ``atomic_write`` / ``write_set``: the tensors as a safetensors file at ``temp``,
    written by us (safetensors' own ``save_file`` makes a temporary file of its own that a kill would orphan)."""
    from safetensors.torch import save

    return _writer(save(tensors, metadata=metadata))


class OutputLock:
    """Exclusive right to write ``paths`` (re-entrant within one process); ``recheck()`` runs under it."""

    def __init__(self, paths, recheck=None):
        self.locks = sorted({str(lock_path(p)) for p in paths})
        self.recheck, self.taken = recheck, []

    def __enter__(self) -> OutputLock:
        try:
            for lock in self.locks:
                self._take(lock)
            if self.recheck is not None:
                self.recheck()  # what an earlier run finished meanwhile is refused now
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _take(self, lock: str) -> None:
        if lock in _held:
            _held[lock][1] += 1
            self.taken.append(lock)
            return
        os.makedirs(os.path.dirname(lock) or ".", exist_ok=True)  # the outputs' folder, now that all is checked
        while True:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(handle)
                os.close(handle)
                output = Path(lock).with_name(Path(lock).name[1 : -len(".lock")])
                raise UserError(
                    f"another paircustom run{owner} is writing '{output}' now; wait for it to finish or "
                    "choose another output."
                ) from None
            if _same_inode(handle, lock):  # not a lock file that its last holder removed meanwhile
                break
            os.close(handle)
        try:  # who holds it, for the refusal of others; best effort
            os.ftruncate(handle, 0)
            os.write(handle, str(os.getpid()).encode())
        except OSError:  # a full disk: the lock holds without its note
            pass
        _held[lock] = [handle, 1]
        self.taken.append(lock)

    def release(self) -> None:
        for lock in reversed(self.taken):
            entry = _held.get(lock)
            if entry is None:
                continue
            entry[1] -= 1
            if entry[1] == 0:
                del _held[lock]
                with contextlib.suppress(OSError):
                    os.unlink(lock)  # still holding it: nobody else can be using this file
                os.close(entry[0])
        self.taken = []


def release_held_locks() -> None:
    """Let go of every output lock this process holds, removing their files: for a process about to end without
    unwinding (``os._exit`` after Ctrl-C), which would otherwise leave them behind."""
    for lock, (handle, _) in list(_held.items()):
        del _held[lock]
        with contextlib.suppress(OSError):
            os.unlink(lock)
        with contextlib.suppress(OSError):
            os.close(handle)


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _owner(handle: int) -> str:
    try:
        pid = os.pread(handle, 20, 0).decode().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def _same_inode(handle: int, path: str) -> bool:
    try:
        return os.fstat(handle).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def journal_path(first: str | Path) -> Path:
    first = Path(first)
    return first.with_name(f".{first.name}.saving.json")


def write_set(items: list[tuple[Path, object]]) -> list[Path]:
    """Write ``[(path, write(temp)), ...]`` so that all of them appear, or (after a kill, until the next run's
    ``finish_interrupted_set``) none: temporary files first, then a journal, then the renames."""
    from .images import atomic_write, final_mode

    if len(items) == 1:
        return [atomic_write(*items[0])]
    first = Path(items[0][0])
    first.parent.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    try:
        for path, write in items:
            handle, temp = tempfile.mkstemp(
                dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=Path(path).suffix
            )
            os.close(handle)
            temps.append((temp, Path(path)))
            write(temp)
            os.chmod(temp, final_mode())
        names = [[os.path.relpath(temp, first.parent), os.path.relpath(path, first.parent)] for temp, path in temps]
        write_bytes_atomically(journal_path(first), json.dumps(names).encode())
    except BaseException as error:
        for temp, _ in temps:
            if os.path.exists(temp):
                os.remove(temp)
        if disk_full(error):
            raise full_disk_error(first, error) from None
        raise
    for temp, path in temps:
        os.replace(temp, path)
    journal_path(first).unlink()
    return [path for _, path in temps]


def finish_interrupted_set(first: str | Path) -> list[Path]:
    """Complete the renames that a killed ``write_set`` of ``first`` had journalled; return the files finished."""
    from ..config.checks import remove_stale_temp_files

    journal = journal_path(first)
    remove_stale_temp_files(journal)  # a journal whose own write was killed: its renames never began
    if not journal.is_file():
        return []
    folder, done = journal.parent, []
    try:
        names = json.loads(journal.read_text())
        pairs = [(folder / temp, folder / final) for temp, final in names]
    except (ValueError, TypeError, OSError):
        pairs = []  # not ours, or unreadable: nothing to finish
    for temp, final in pairs:
        inside = temp.resolve().parent == folder.resolve() == final.resolve().parent
        if inside and temp.is_file() and not temp.is_symlink() and temp.name.startswith(f".{final.name}."):
            os.replace(temp, final)
            done.append(final)
    journal.unlink(missing_ok=True)
    return done
