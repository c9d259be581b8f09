"""In-graph streaming confusion matrix over a dataset, under any tf.distribute strategy."""

import keras
import numpy as np
import tensorflow as tf

VOID = 255


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
    keep = truth != VOID
    index = tf.boolean_mask(truth * num_classes + predicted, keep)
    counts = tf.math.bincount(index, minlength=num_classes * num_classes,
                              maxlength=num_classes * num_classes, dtype=tf.int64)
    return tf.reshape(counts, [num_classes, num_classes])


def evaluate_confusion(model, dataset, num_classes, strategy=None, flip=False, scales=(1.0,),
                       num_images=None, verbose=1):
    """Runs ``model`` over ``dataset`` ({image, mask} batches) and returns the confusion matrix.

    Each replica computes its batch's confusion in-graph; the matrices are
    summed across replicas with ``strategy.reduce`` and accumulated.
    """
    strategy = strategy or tf.distribute.get_strategy()

    @tf.function(reduce_retracing=True)
    def replica_step(batch):
        probs = predict_probabilities(model, batch["image"], flip, scales)
        return batch_confusion(tf.argmax(probs, axis=-1), batch["mask"][..., 0], num_classes)

    @tf.function(reduce_retracing=True)
    def step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM,
                               strategy.run(replica_step, args=(batch,)), axis=None)

    confusion = np.zeros((num_classes, num_classes), np.int64)
    progress = keras.utils.Progbar(num_images, verbose=verbose, unit_name="image")
    seen = 0
    for batch in strategy.experimental_distribute_dataset(dataset):
        confusion += step(batch).numpy()
        seen += sum(int(tf.shape(t)[0]) for t in strategy.experimental_local_results(batch["image"]))
        progress.update(seen)
    return confusion
