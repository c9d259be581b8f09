"""Streaming confusion matrix over an evaluation split, under any tf.distribute strategy."""

import keras
import numpy as np
import tensorflow as tf

from tss_keras.constants import VOID_LABEL
from tss_keras.data.pipeline import eval_dataset
from tss_keras.progress import Progress
from tss_keras.training.distribute import replica_stream


def predict_probabilities(model, images, flip=False, scales=(1.0,)):
    """Softmax [B, H, W, C] averaged over input scales and (optionally) a horizontal flip."""
    size = tf.shape(images)[1:3]
    total = 0.0
    for scale in scales:
        scaled = images
        if scale != 1.0:
            new = tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)
            scaled = tf.image.resize(images, new)
        variants = [scaled, tf.reverse(scaled, [2])] if flip else [scaled]
        for i, variant in enumerate(variants):
            probs = tf.nn.softmax(tf.cast(model(variant, training=False), tf.float32), axis=-1)
            if i == 1:
                probs = tf.reverse(probs, [2])
            total += tf.image.resize(probs, size) if scale != 1.0 else probs
    return total / float(len(scales) * (2 if flip else 1))


def evaluation_stream(records, num_classes, shard_index=0, num_shards=1):
    """One replica's share of an evaluation split: single images at their own size.

    Replica ``shard_index`` reads every ``num_shards``-th record; shards are
    padded to the same length with a repeated image of ``weight`` 0, so no
    replica runs out before the others. No image is ever padded, so
    predictions (and mIoU) do not depend on the number of replicas.
    Yields ``{"image" [1, H, W, 3], "mask" [1, H, W, 1], "weight" [1]}``.
    """
    mine = list(records[shard_index::num_shards])
    length = -(-len(records) // num_shards)
    weights = [1.0] * len(mine) + [0.0] * (length - len(mine))
    mine += [records[0]] * (length - len(mine))
    images = eval_dataset(mine, num_classes, batch_size=1)
    return tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(weights).batch(1))).map(
        lambda batch, weight: {**batch, "weight": weight})


def evaluate_confusion(model, records, num_classes, strategy=None, flip=False, scales=(1.0,),
                       verbose=1):
    """Runs ``model`` over ``records`` (with masks) and returns the [C, C] confusion matrix.

    Rows are ground truth, columns predictions, void ignored. Each replica
    predicts its own images one at a time; a ``keras.metrics.MeanIoU`` made in
    the strategy's scope keeps the confusion matrix, summed across replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        metric = keras.metrics.MeanIoU(num_classes, ignore_class=VOID_LABEL, dtype="int64")

    def replica_step(batch):
        predicted = tf.argmax(predict_probabilities(model, batch["image"], flip, scales), axis=-1)
        weight = tf.broadcast_to(tf.cast(batch["weight"], tf.int64)[:, None, None],
                                 tf.shape(predicted))
        metric.update_state(batch["mask"][..., 0], predicted, sample_weight=weight)

    @tf.function(reduce_retracing=True)
    def step(batch):
        strategy.run(replica_step, args=(batch,))

    replicas = strategy.num_replicas_in_sync
    dataset = strategy.distribute_datasets_from_function(lambda context: replica_stream(
        lambda shard, shards: evaluation_stream(records, num_classes, shard, shards), context))
    progress = Progress(len(records), "eval", "image", enabled=bool(verbose))
    for i, batch in enumerate(dataset):
        step(batch)
        progress.update(min(len(records), (i + 1) * replicas))
    return metric.total_cm.numpy().astype(np.int64)
