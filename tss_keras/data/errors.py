"""The one error type the data layer raises for bad input."""


class DataError(ValueError):
    """Bad input data: the message names the file (or flag) and the problem.

    Entry points print ``str(error)`` as a one-line message and exit non-zero,
    so messages must be complete on their own.
    """
