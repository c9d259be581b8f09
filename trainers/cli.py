"""What every entry point shares: one-line errors instead of tracebacks."""

import re
import sys

from tss_keras.errors import DataError, NonFiniteLossError, UsageError

# A DataError raised inside tf.numpy_function reaches Python wrapped in a TF
# error; this pulls our one-line message back out.
_WRAPPED = re.compile(r"DataError: (.+?)(?:\n|$)")


def one_line(error):
    """The user-facing message for an error, without TF's wrapping."""
    match = _WRAPPED.search(str(error))
    if match:
        return match.group(1).strip()
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def run_main(main_fn):
    """Runs ``main_fn`` (an absl main) and turns known errors into exit 1 + one line.

    A preempted training run (SIGTERM; a checkpoint was saved) exits with
    code 42, which cluster managers and ``trainers.launch`` read as "restart me".
    """
    from tss_keras.training.loop import TrainingPreempted

    def wrapped(argv):
        try:
            return main_fn(argv)
        except TrainingPreempted as e:
            print(f"preempted: {e}", file=sys.stderr)
            sys.exit(TrainingPreempted.exit_code)
        except (DataError, UsageError, NonFiniteLossError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # TF wraps numpy_function errors
            if _WRAPPED.search(str(e)):
                print(f"error: {one_line(e)}", file=sys.stderr)
                sys.exit(1)
            raise
    return wrapped
