"""Runs trainers.run as N worker processes on this machine (MultiWorkerMirroredStrategy).

python -m trainers.launch --workers=2 -- --flagfile=demo.flags --model_dir=runs/demo2

Each worker gets a free port on 127.0.0.1, the matching TF_CONFIG and
--strategy=multi_worker; its output lines are prefixed with [w<index>]. If a
worker fails, the others are stopped and the launcher exits with its code;
SIGTERM or Ctrl-C is passed on to every worker, which then save a checkpoint
at a step they agree on (exit code 42: run the same command again to resume).
It is for trying multi-worker training on one machine and for tests; on
several machines run trainers.run on each with its own TF_CONFIG (README).
"""

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from tss_keras.launcher import launch_workers

flags.DEFINE_integer("workers", 2, "Number of worker processes.")
flags.DEFINE_string("host", "127.0.0.1", "Address the workers listen on (this machine).")
FLAGS = flags.FLAGS


def main(argv):
    raise SystemExit(launch_workers(FLAGS.workers, argv[1:], host=FLAGS.host))


if __name__ == "__main__":
    app.run(main)
