"""Keeps TensorFlow's harmless C++ chatter off the terminal.

TF 2.21 prints oneDNN/CUDA notices from C++ at start-up, and lines such as
``remapper failed`` or ``failed call to cuInit`` later, none of which are
failures; no environment variable silences them all. Entry points import
this module first: it routes file descriptor 2 through a filter thread that
drops lines matching ``HARMLESS`` and passes everything else (our one-line
errors, Python tracebacks, real TF errors) through unchanged.
"""

import atexit
import os
import re
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HARMLESS = re.compile(
    r"oneDNN custom operations are on|cudart_stub|Could not find cuda drivers|cuInit|"
    r"cpu_feature_guard|To enable the following instructions|rebuild TensorFlow with the "
    r"appropriate compiler flags|All log messages before absl::InitializeLog|remapper failed|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|port\.cc:\d+\]|kernel driver does not appear to be running|"
    r"failed call to cuInit|Local rendezvous is aborting|Skipping loop optimization")


class _StderrFilter:
    """Copies lines written to fd 2 onto the real stderr, minus the harmless ones."""

    def __init__(self):
        sys.stderr.flush()
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.reader = os.fdopen(read_end, "rb", buffering=0)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _pump(self):
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not HARMLESS.search(line.decode(errors="replace")):
                    os.write(self.real, line + b"\n")
        if pending and not HARMLESS.search(pending.decode(errors="replace")):
            os.write(self.real, pending)

    def close(self):
        """Restores fd 2 and lets the thread drain what is left."""
        sys.stderr.flush()
        os.dup2(self.real, 2)
        self.thread.join(timeout=2)


if "tensorflow" not in sys.modules:
    _filter = _StderrFilter()
    import tensorflow
    import keras  # noqa: F401
    import tss_keras  # noqa: F401
    from absl import logging as _absl_logging

    _absl_logging.set_verbosity(_absl_logging.WARNING)
    tensorflow.get_logger().setLevel("ERROR")
