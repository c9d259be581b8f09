"""In-graph streaming confusion matrix over a dataset, under any tf.distribute strategy."""

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


def batch_confusion(predictions, masks, num_classes):
    """[C, C] int64 confusion of one batch (rows: truth, columns: prediction), void ignored."""
    truth = tf.reshape(tf.cast(masks, tf.int64), [-1])
    predicted = tf.reshape(tf.cast(predictions, tf.int64), [-1])
    keep = truth != VOID_LABEL
    index = tf.boolean_mask(truth * num_classes + predicted, keep)
    counts = tf.math.bincount(index, minlength=num_classes * num_classes,
                              maxlength=num_classes * num_classes, dtype=tf.int64)
    return tf.reshape(counts, [num_classes, num_classes])


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

    Each replica predicts its own images one at a time and computes their
    confusion in-graph; the matrices are summed across replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()

    def replica_step(batch):
        probs = predict_probabilities(model, batch["image"], flip, scales)
        confusion = batch_confusion(tf.argmax(probs, axis=-1), batch["mask"][..., 0], num_classes)
        return confusion * tf.cast(batch["weight"][0], tf.int64)

    @tf.function(reduce_retracing=True)
    def step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM,
                               strategy.run(replica_step, args=(batch,)), axis=None)

    replicas = strategy.num_replicas_in_sync
    dataset = strategy.distribute_datasets_from_function(lambda context: replica_stream(
        lambda shard, shards: evaluation_stream(records, num_classes, shard, shards), context))
    confusion = np.zeros((num_classes, num_classes), np.int64)
    progress = Progress(len(records), "eval", "image", enabled=bool(verbose))
    for i, batch in enumerate(dataset):
        confusion += step(batch).numpy()
        progress.update(min(len(records), (i + 1) * replicas))
    return confusion
