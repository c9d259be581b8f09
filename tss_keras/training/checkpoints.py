"""Step checkpoints that survive a kill, and a stop on NaN/inf losses."""

import math

import keras
import tensorflow as tf


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss; the last good checkpoint is kept."""


class StepCheckpoints:
    """A tf.train.CheckpointManager over named trackables (models, optimizers).

    Args:
        directory: where checkpoints go (``<model_dir>/<stage>/checkpoints``).
        max_to_keep: how many to keep.
        **trackables: e.g. ``model=..., optimizer=...``.
    """

    def __init__(self, directory, max_to_keep=2, **trackables):
        self.directory = directory
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep)

    def restore_latest(self):
        """Restores the newest checkpoint; returns its path or None."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).expect_partial()
        return latest

    def save(self, step):
        return self.manager.save(checkpoint_number=step)


class CheckpointEveryEpoch(keras.callbacks.Callback):
    """Saves a checkpoint at the end of each fit epoch (= ``--checkpoint_every`` steps).

    Stops training with NonFiniteLossError when a logged loss is NaN or inf,
    before saving, so the last checkpoint on disk is a good one.
    """

    def __init__(self, checkpoints, steps_per_epoch):
        super().__init__()
        self.checkpoints = checkpoints
        self.steps_per_epoch = steps_per_epoch
        self.last_good_epoch = None

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if "loss" in name and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{name} became {float(value)} in training; stopped. The last good "
                    f"checkpoint is kept in {self.checkpoints.directory}")

    def on_epoch_end(self, epoch, logs=None):
        self.on_train_batch_end(0, logs)
        for variable in self.model.trainable_variables:
            if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                raise NonFiniteLossError(
                    f"weights became non-finite in training ({variable.path}); stopped. The last "
                    f"good checkpoint is kept in {self.checkpoints.directory}")
        self.checkpoints.save((epoch + 1) * self.steps_per_epoch)
        self.last_good_epoch = epoch
