"""Running trainers through the real TrainingLoop on small in-memory batches."""

import tensorflow as tf

from tss_keras.training.loop import TrainingLoop


def split_batch(data, shard_index, num_shards):
    """Shard ``shard_index`` of a (nested) batch: contiguous equal slices of every array."""
    def take(array):
        size = len(array) // num_shards
        return array[shard_index * size:(shard_index + 1) * size]
    return tf.nest.map_structure(take, data)


def fixed_stream(data):
    """make_stream for TrainingLoop: every replica gets its slice of the same batch each step."""
    return lambda shard, shards: tf.data.Dataset.from_tensors(
        split_batch(data, shard, shards)).repeat()


def run_loop(trainer, strategy, data, steps, directory, trackables=None, **kwargs):
    """Trains ``steps`` steps on one repeated batch; returns the last reduced metrics."""
    seen = []
    trackables = trackables or {"model": trainer}
    loop = TrainingLoop(strategy, trainer, fixed_stream(data), steps, str(directory), trackables,
                        checkpoint_every=steps, verbose=False,
                        monitors=[lambda step, values: seen.append(
                            {k: float(v) for k, v in values.items()})], **kwargs)
    loop.run()
    return seen


def weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]
