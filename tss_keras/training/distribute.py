"""Choosing a tf.distribute strategy, including N logical CPU replicas."""

import tensorflow as tf

from tss_keras.errors import UsageError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def make_strategy(strategy="auto", num_gpus=None, cpu_replicas=0):
    """Returns a tf.distribute strategy.

    Args:
        strategy: ``auto`` (mirrored over the GPUs if more than one, else
            default), ``default`` (one device), ``mirrored``, or
            ``multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG; Keras
            ``fit`` does not support it in Keras 3, keras issue 20585).
        num_gpus: use the first N GPUs (None: all).
        cpu_replicas: if > 1, split the CPU into this many logical devices
            and mirror over them, so multi-device code runs on any machine.
            Must be called before TensorFlow initialises its devices.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy: unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    if cpu_replicas and cpu_replicas > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already configured in this process (the same split, in tests)
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) < cpu_replicas:
            raise UsageError(f"--cpu_replicas={cpu_replicas}: TensorFlow was initialised with "
                             f"{len(logical)} CPU device(s) before the split")
        return tf.distribute.MirroredStrategy([d.name for d in logical[:cpu_replicas]])
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        gpus = gpus[:num_gpus]
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy([g.name for g in gpus] or None)
    return tf.distribute.get_strategy()
