"""Error types whose messages are shown to users as they are (one line, no traceback)."""

from tss_keras.data.errors import DataError


class UsageError(ValueError):
    """A bad setting; the message starts with the flag it came from (``--name: ...``)."""


__all__ = ["DataError", "UsageError"]
