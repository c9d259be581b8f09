"""Pieces the training stages share: class lists, pools, optimizers, fit loop."""

import math
import os
import sys

import keras
import tensorflow as tf

from tss_keras.data.class_names import load_class_names
from tss_keras.data.pools import build_pools, parse_strong_classes
from tss_keras.data.voc import load_split
from tss_keras.errors import UsageError
from tss_keras.training.checkpoints import CheckpointEveryEpoch, StepCheckpoints


def load_training_data(config):
    """Returns (class_names, class_split, records, pools) for the train split."""
    class_names = load_class_names(config.class_names_file)
    class_split = parse_strong_classes(config.strong_classes, class_names)
    records, bad = load_split(config.data_dir, config.train_split, class_names,
                              skip_bad=config.skip_bad)
    if bad:
        print(f"Skipped {len(bad)} bad files in {config.train_split} (--skip_bad); first: "
              f"{bad[0]['file']}: {bad[0]['error']}")
    return class_names, class_split, records, build_pools(records, class_split)


def make_optimizer(name, learning_rate, total_steps, weight_decay=0.0):
    """SGD (momentum 0.9) or AdamW with polynomial (power 0.9) decay."""
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, max(total_steps, 1), end_learning_rate=0.0, power=0.9)
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=weight_decay or None)
    if name == "adam":
        return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    raise UsageError(f"--optimizer: unknown optimizer {name!r} (choose sgd or adam)")


def fit_with_checkpoints(trainer, dataset, total_steps, checkpoint_every, stage_dir, log_dir,
                         trackables, extra_callbacks=()):
    """Runs ``trainer.fit`` for ``total_steps`` steps, checkpointing and resuming.

    One fit "epoch" is ``checkpoint_every`` steps, so a checkpoint is written
    after each and a re-run resumes at the last one. Returns the step reached.
    """
    steps_per_epoch = max(1, min(checkpoint_every, total_steps))
    epochs = math.ceil(total_steps / steps_per_epoch)
    checkpoints = StepCheckpoints(os.path.join(stage_dir, "checkpoints"), **trackables)
    restored = checkpoints.restore_latest()
    step = int(trainer.optimizer.iterations.numpy())
    initial_epoch = step // steps_per_epoch
    if restored:
        print(f"Resuming from step {step} ({restored})")
    if initial_epoch < epochs:
        callbacks = [CheckpointEveryEpoch(checkpoints, steps_per_epoch),
                     keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 4),
                                                 write_graph=False),
                     *extra_callbacks]
        trainer.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                    initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                    # a live bar on a terminal; one line per checkpoint in logs
                    verbose=1 if sys.stdout.isatty() else 2)
    return int(trainer.optimizer.iterations.numpy())


def save_model_atomically(model, path):
    """Saves a ``.keras`` file via a temporary name, so no half file is ever at ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path[:-len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)
    return path


def seed_everything(seed):
    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
