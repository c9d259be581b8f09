"""The optimizers the training stages use."""

import keras

from tss_keras.errors import UsageError


def make_optimizer(name, learning_rate, total_steps, weight_decay=0.0):
    """SGD (momentum 0.9) or AdamW, with polynomial (power 0.9) decay to 0 over ``total_steps``.

    Weight decay is decoupled in both (Keras applies ``weight_decay`` to the
    weights directly, not through the gradient).
    """
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, max(total_steps, 1), end_learning_rate=0.0, power=0.9)
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=weight_decay or None)
    if name == "adam":
        return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    raise UsageError(f"--optimizer: unknown optimizer {name!r} (choose sgd or adam)")
