"""The one exception type for mistakes a user can fix (bad files, impossible settings).

The command line prints its message as one sentence and exits with code 2;
everything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input: the message says what is wrong and how to fix it."""


class PairCustomWarning(UserWarning):
    """Something the user should know that does not stop the run; the command line prints it as one line."""


def reason(error: BaseException) -> str:
    """An exception from a library (a decoder, safetensors, json) as a short one-line clause for our sentences."""
    return " ".join(str(error).split())[:200] or type(error).__name__
