"""Error types whose messages are shown to users as they are (one line, no traceback).

Entry points print ``str(error)`` after ``error:`` and exit 1, so every
message must be complete on its own: it names the file or the flag first.
"""


class DataError(ValueError):
    """Bad input data: the message names the file (or flag) and the problem."""


class UsageError(ValueError):
    """A bad setting; the message starts with the flag it came from (``--name: ...``)."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss; the last good checkpoint is kept."""


__all__ = ["DataError", "UsageError", "NonFiniteLossError"]
