"""The TS3 trainer: python -m trainers.run --flagfile=voc.flags

Runs Transferable Semi-supervised Semantic Segmentation as stages, in order:
data, lnet, transfer, pnet, eval (add export to --stages to export). A
finished stage is skipped; a killed run resumes from its last checkpoint.
--data_dir and --model_dir are required (directly or in a flag file).

Several machines: the same command on each machine, with its TF_CONFIG and
--strategy=multi_worker; `python -m trainers.launch --workers=N -- <flags>`
tries that on one machine.
"""

import os

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from tss_keras.config_flags import config_from_flags, define_flags
from tss_keras.errors import UsageError
from tss_keras.layout import RunLayout
from trainers.cli import run_main

define_flags(flags.FLAGS)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]} (flags are --name=value)")
    config = config_from_flags(FLAGS)
    from tss_keras.training.distribute import create_strategy

    # The strategy first: MultiWorkerMirroredStrategy and the CPU split both
    # have to happen before anything initialises TensorFlow's devices.
    strategy, cluster = create_strategy(config.distribute.strategy, config.distribute.num_gpus,
                                        config.distribute.cpu_replicas)
    from tss_keras.stages import run_stages

    if cluster.multi_worker:
        print(f"worker {cluster.worker_index} of {cluster.num_workers} joined "
              f"({strategy.num_replicas_in_sync} replicas in all)", flush=True)
    layout = RunLayout(config.model_dir)
    if cluster.is_chief:
        os.makedirs(config.model_dir, exist_ok=True)
        FLAGS.append_flags_into_file(layout.flags_file)
    outputs = run_stages(config, strategy, cluster)
    if cluster.is_chief:
        print("Results and artifacts:")
        for stage, path in outputs.items():
            print(f"  {stage}: {path}")
        print(f"  TensorBoard: tensorboard --logdir {os.path.join(config.model_dir, 'logs')}")


if __name__ == "__main__":
    app.run(run_main(main))
