"""Imports TensorFlow without its C++ start-up chatter on stderr.

TF 2.21 prints oneDNN/CUDA notices from C++ before absl logging starts, and
no environment variable silences them. Entry points import this module first
so that a user sees only our output; `device_setup` wraps the first device
initialisation the same way. If the wrapped code fails, the captured text is
replayed so nothing is hidden.
"""

import contextlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def device_setup():
    """Sends fd 2 to a temporary file for the block; replays it on failure."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


if "tensorflow" not in sys.modules:
    with device_setup():
        import tensorflow
        import keras  # noqa: F401
        import tss_keras  # noqa: F401
    from absl import logging as _absl_logging

    _absl_logging.set_verbosity(_absl_logging.WARNING)
    tensorflow.get_logger().setLevel("ERROR")
