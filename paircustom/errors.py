"""The one exception type for mistakes a user can fix (bad files, impossible settings).

The command line prints its message as one sentence and exits with code 2;
everything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input: the message says what is wrong and how to fix it, on one line (a value shown in it, such as an
    array's repr, may span several)."""

    def __init__(self, message: str = ""):
        super().__init__(" ".join(str(message).split()))


class PairCustomWarning(UserWarning):
    """Something the user should know that does not stop the run; the command line prints it as one line."""


def disk_full(error: BaseException) -> bool:
    """An OSError or a library's error (safetensors, PIL) saying that the disk or the quota is full."""
    import errno

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return any(words in str(error) for words in ("No space left", "Disk quota exceeded", "File too large"))


def full_disk_error(path, error: BaseException) -> UserError:
    """The one sentence for a write that found the disk full (the temporary file is removed by the writer)."""
    return UserError(
        f"no space left on the device to write '{path}' ({reason(error)}); nothing was written: "
        "free some space or choose an output on another disk."
    )


def reason(error: BaseException) -> str:
    """An exception from a library (a decoder, safetensors, json) as a short one-line clause for our sentences."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def printable(text: str) -> str:
    """``text`` with control characters (ESC, BEL, CR, ...) shown as escapes, so that what a file holds cannot
    clear or rewrite the terminal when printed; newlines and tabs stay."""
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else repr(c)[1:-1] for c in text)
