"""Per-image losses that ignore void (255) and stay correct under replicas.

Each loss returns one value per image; callers average them and divide by
the replica count (gradients are summed across replicas; docs/method.md, "Training").
"""

import tensorflow as tf

from tss_keras.constants import VOID_LABEL


PRESENCE_FRACTION = 0.05  # share of an image's pixels the presence loss treats as object


def labels_from_mask(mask, num_classes):
    """Multi-hot foreground labels [B, K] from masks [B, H, W, 1] (0 and 255 dropped)."""
    mask = tf.cast(mask[..., 0], tf.int32)
    one_hot = tf.one_hot(mask, num_classes, dtype=tf.float32)  # 255 -> all zeros
    present = tf.cast(tf.reduce_max(one_hot, axis=[1, 2]) > 0, tf.float32)
    return present[:, 1:]


def agnostic_targets(mask):
    """(foreground float [B, H, W, 1], valid float [B, H, W, 1]) from class masks."""
    mask = tf.cast(mask, tf.int32)
    valid = tf.cast(mask != VOID_LABEL, tf.float32)
    foreground = tf.cast((mask != 0) & (mask != VOID_LABEL), tf.float32)
    return foreground, valid


def masked_mean_per_image(values, valid):
    """Mean of ``values`` over valid pixels, per image [B] (0 if none valid)."""
    axes = list(range(1, len(values.shape)))
    total = tf.reduce_sum(values * valid, axis=axes)
    count = tf.reduce_sum(valid, axis=axes)
    return tf.math.divide_no_nan(total, count)


def agnostic_bce_per_image(logits, mask):
    """BCE of the foreground logit vs 'any class' over non-void pixels, per image."""
    foreground, valid = agnostic_targets(mask)
    logits = tf.cast(logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=foreground, logits=logits)
    return masked_mean_per_image(bce, valid)


def presence_bce_per_image(logits, labels, fraction=PRESENCE_FRACTION):
    """Per image: BCE of "an object is here" on the top ``fraction`` of agnostic logits.

    Logits are [B, H, W, 1]. A multiple-instance loss for images with
    image-level labels only: an image with at least one label holds an object,
    so the mean of its most foreground-like pixels' logits should say
    foreground. Images without a label give 0.
    """
    logits = tf.cast(logits, tf.float32)
    flat = tf.reshape(logits, [tf.shape(logits)[0], -1])
    count = tf.maximum(1, tf.cast(fraction * tf.cast(tf.shape(flat)[1], tf.float32), tf.int32))
    top = tf.reduce_mean(tf.math.top_k(flat, k=count).values, axis=-1)
    labelled = tf.cast(tf.reduce_max(labels, axis=-1) > 0, tf.float32)
    return tf.nn.softplus(-top) * labelled


def multilabel_bce_per_image(logits, labels):
    """Multi-label BCE of image logits [B, K] vs multi-hot labels, per image."""
    logits = tf.cast(logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(bce, axis=-1)


def cam_pixel_bce_per_image(cams, mask, num_classes):
    """Per-pixel BCE of CAM logits [B, h, w, K] vs one-hot masks at the CAM's size, per image.

    The mask [B, H, W, 1] is reduced to the CAM grid by nearest neighbour; void
    pixels are ignored.
    """
    cams = tf.cast(cams, tf.float32)
    small = tf.image.resize(mask, tf.shape(cams)[1:3], method="nearest")
    small = tf.cast(small[..., 0], tf.int32)
    targets = tf.one_hot(small, num_classes, dtype=tf.float32)[..., 1:]
    valid = tf.cast(small != VOID_LABEL, tf.float32)[..., None]
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=cams)
    return masked_mean_per_image(bce, tf.broadcast_to(valid, tf.shape(bce)))


def segmentation_ce_per_image(logits, mask):
    """Softmax cross-entropy of [B, H, W, C] logits vs a class mask, void ignored."""
    mask = tf.cast(mask[..., 0], tf.int32)
    valid = tf.cast(mask != VOID_LABEL, tf.float32)
    safe = tf.where(mask == VOID_LABEL, 0, mask)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=tf.cast(logits, tf.float32))
    return masked_mean_per_image(ce, valid)


def per_replica(loss):
    """A replica's mean loss divided by the replica count.

    Gradients are summed across replicas, so this makes the applied gradient
    that of the global batch mean (design note: a hand-written mean is not
    divided by the replica count the way keras.losses are).
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype)
