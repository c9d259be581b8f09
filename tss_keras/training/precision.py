"""Mixed precision without process-wide side effects, and loss scaling that agrees across replicas."""

import contextlib

import keras
import tensorflow as tf

MIXED = "mixed_float16"


@contextlib.contextmanager
def dtype_policy_scope(mixed_precision):
    """Models built inside use ``mixed_float16`` (or ``float32``); the global policy is restored.

    keras.applications backbones read the global policy when they build their
    layers and take no ``dtype`` argument, so the policy is set for the
    duration of the build only. Each layer keeps its policy afterwards (and
    in its saved config).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED if mixed_precision else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_loss_scaling(optimizer, mixed_precision):
    """Wraps an optimizer in a LossScaleOptimizer for mixed precision."""
    if mixed_precision and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def scale_loss(optimizer, loss):
    """The loss to differentiate: scaled for a LossScaleOptimizer, unchanged otherwise."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def agree_on_finite(gradients):
    """Gradients that are non-finite on every replica if they are on any one.

    Keras 3's LossScaleOptimizer decides "gradients finite?" from the first
    replica's gradients, before they are summed across replicas: an overflow
    on another replica is applied (writing inf into the weights) and the loss
    scale is not lowered. Poisoning every replica's gradients with NaN when
    any replica overflowed makes every replica skip the step and lower the
    scale together. Call it in replica context, before ``optimizer.apply``.
    """
    local = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients
                           if g is not None])
    context = tf.distribute.get_replica_context()
    bad_replicas = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                      1.0 - tf.cast(local, tf.float32))
    poison = tf.where(bad_replicas > 0, float("nan"), 0.0)
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in gradients]


def apply_gradients(optimizer, loss_gradients, variables, boost=None):
    """Applies gradients of a ``scale_loss``-ed loss; replicas agree on overflow steps.

    Args:
        boost: optional (multiplier, set of variable paths): those variables'
            gradients are multiplied, which under SGD multiplies their
            learning rate (a randomly initialised head beside a pretrained
            encoder, as DeepLab trains).
    """
    if boost is not None and boost[0] != 1.0:
        factor, paths = boost
        loss_gradients = [g * factor if g is not None and v.path in paths else g
                          for g, v in zip(loss_gradients, variables)]
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        loss_gradients = agree_on_finite(loss_gradients)
    optimizer.apply(loss_gradients, variables)
