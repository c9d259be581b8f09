"""tf.data pipelines: strong and weak training streams and a deterministic eval stream.

Decoding goes through PIL inside ``tf.numpy_function`` so palette indices are
read exactly and a bad file raises a DataError that names it. Augmentation is
TF ops: random scale, pad (255 for labels, the mean colour for images),
random crop, horizontal flip, and optionally colour jitter. Label maps are
only ever resized with nearest neighbour, so a void pixel never becomes a
class and a class pixel becomes void only where padding is added.
"""

import numpy as np
import tensorflow as tf

from tss_keras.constants import IMAGENET_MEAN_RGB, VOID_LABEL
from tss_keras.data.voc import read_image, read_mask

AUTOTUNE = tf.data.AUTOTUNE
JITTER_STREAM = 1  # _op_seeds stream of colour jitter (augment's is 0)


def multi_hot(labels, num_classes):
    """float32 [num_classes - 1]: 1 at each foreground label (class k at index k - 1)."""
    vector = np.zeros(num_classes, np.float32)
    vector[list(labels)] = 1.0
    return vector[1:]


def _decode_image(path):
    return read_image(path.decode("utf-8"))


def _decode_image_and_mask(num_classes):
    def decode(image_path, mask_path):
        image = read_image(image_path.decode("utf-8"))
        mask = read_mask(mask_path.decode("utf-8"), num_classes)
        if mask.shape != image.shape[:2]:
            from tss_keras.errors import DataError
            raise DataError(f"{mask_path.decode()}: mask size differs from its image")
        return image, mask
    return decode


def decode_image(image_path):
    """Graph op: uint8 [H, W, 3] from a path tensor."""
    image = tf.numpy_function(_decode_image, [image_path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def decode_image_and_mask(image_path, mask_path, num_classes):
    """Graph op: (uint8 [H, W, 3], uint8 [H, W, 1]) from path tensors."""
    image, mask = tf.numpy_function(_decode_image_and_mask(num_classes),
                                    [image_path, mask_path], (tf.uint8, tf.uint8),
                                    stateful=False)
    image.set_shape([None, None, 3])
    mask = tf.expand_dims(mask, -1)
    mask.set_shape([None, None, 1])
    return image, mask


def resize_label(label, size):
    """Nearest-neighbour resize of an integer label map [H, W, 1]."""
    return tf.image.resize(label, size, method="nearest")


def _op_seeds(seed, count, stream=0):
    """``count`` stateless-op seeds from an element seed.

    Stateless ops with a seed per element make augmentation independent of
    the order in which parallel ``map`` calls run, so a seeded stream is the
    same every time. ``seed``: an int, a [2] tensor, or None (random).
    ``stream`` > 0 folds that number into the seed first, so that another
    augmentation of the same element draws independently of ``augment``.
    """
    if seed is None:
        seed = tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int64)
    elif isinstance(seed, int):
        seed = tf.constant([seed, 0], tf.int64)
    if stream:
        seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), stream)
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), count))


def augment(image, labels, crop_size, min_scale=0.5, max_scale=2.0, flip=True, seed=None,
            scale=None, base_size=None):
    """Random scale, pad, crop and flip of an image and aligned label maps.

    Args:
        image: uint8 or float [H, W, 3].
        labels: a tuple of uint8 label maps [H, W, 1] (may be empty).
        crop_size: (height, width) of the output.
        min_scale, max_scale: the scale range.
        flip: random horizontal flip.
        seed: an int or a [2] element seed (see ``_op_seeds``); None is random.
        scale: a fixed scale (overrides the random one; for tests).
        base_size: if given, scales are relative to the image resized to this
            long side (the L-Net's canonical size), not to its own size.

    Returns:
        (image float32 [h, w, 3] in 0..255, tuple of uint8 [h, w, 1]).
    """
    crop_h, crop_w = crop_size
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    seeds = _op_seeds(seed, 3)
    if scale is None:
        scale = tf.random.stateless_uniform([], seeds[0], min_scale, max_scale)
    if base_size:
        scale *= base_size / tf.cast(tf.reduce_max(shape[:2]), tf.float32)
    new_size = tf.cast(tf.round(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
    new_size = tf.maximum(new_size, 1)
    image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    labels = tuple(resize_label(label, new_size) for label in labels)

    pad_h = tf.maximum(crop_h - new_size[0], 0)
    pad_w = tf.maximum(crop_w - new_size[1], 0)
    mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)
    image = tf.pad(image - mean, [[0, pad_h], [0, pad_w], [0, 0]]) + mean
    labels = tuple(
        tf.pad(tf.cast(label, tf.int32) - VOID_LABEL, [[0, pad_h], [0, pad_w], [0, 0]]) + VOID_LABEL
        for label in labels)

    stacked = tf.concat([image] + [tf.cast(label, tf.float32) for label in labels], axis=-1)
    stacked = tf.image.stateless_random_crop(stacked, [crop_h, crop_w, 3 + len(labels)],
                                             seed=seeds[1])
    if flip:
        do_flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
        stacked = tf.cond(do_flip, lambda: tf.reverse(stacked, [1]), lambda: stacked)
    image = stacked[..., :3]
    labels = tuple(tf.cast(stacked[..., 3 + i:4 + i], tf.uint8) for i in range(len(labels)))
    return image, labels


def color_jitter(image, strength, seed=None):
    """Random hue, saturation, brightness and contrast of a float image in 0..255.

    ``strength`` in [0, 1] scales every range: at 1 the hue turns by up to
    half the colour circle either way (any hue), saturation and contrast
    scale by 0-2x and 0.5-1.5x, brightness moves by up to a quarter of the
    range. ``seed``: as in ``augment``; the same element seed as ``augment``'s
    gives draws independent of its crop.
    """
    if not strength:
        return image
    seeds = _op_seeds(seed, 4, stream=JITTER_STREAM)
    unit = image / 255.0
    unit = tf.image.stateless_random_hue(unit, 0.5 * strength, seeds[0])
    unit = tf.image.stateless_random_saturation(unit, 1.0 - strength, 1.0 + strength, seeds[1])
    unit = tf.image.stateless_random_brightness(unit, 0.25 * strength, seeds[2])
    unit = tf.image.stateless_random_contrast(unit, 1.0 - 0.5 * strength, 1.0 + 0.5 * strength,
                                              seeds[3])
    return tf.clip_by_value(unit, 0.0, 1.0) * 255.0


def whole_image(image, crop_size, base_size=None, min_scale=0.5, flip=True, seed=None):
    """The whole image, randomly scaled to fit inside the crop and placed at a random offset.

    For image-level labels: unlike a random crop, it never cuts out an
    object whose label the image carries. The scale is at most the one that
    fits the crop (and at most ``base_size`` on the long side), times a
    random factor in [max(min_scale, 0.75), 1]. Padding is the mean colour.

    Returns:
        float32 [crop_h, crop_w, 3] in 0..255.
    """
    crop_h, crop_w = crop_size
    image = tf.cast(image, tf.float32)
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    seeds = _op_seeds(seed, 4)
    fit = tf.minimum(crop_h / size[0], crop_w / size[1])
    if base_size:
        fit = tf.minimum(fit, base_size / tf.reduce_max(size))
    fit *= tf.random.stateless_uniform([], seeds[0], max(min_scale, 0.75), 1.0)
    new_size = tf.maximum(tf.cast(tf.floor(size * fit), tf.int32), 1)
    image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    top = tf.random.stateless_uniform([], seeds[1], 0, crop_h - new_size[0] + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, crop_w - new_size[1] + 1, tf.int32)
    mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)
    image = tf.pad(image - mean, [[top, crop_h - new_size[0] - top],
                                  [left, crop_w - new_size[1] - left], [0, 0]]) + mean
    image = tf.ensure_shape(image, [crop_h, crop_w, 3])
    if flip:
        image = tf.cond(tf.random.stateless_uniform([], seeds[3]) < 0.5,
                        lambda: tf.reverse(image, [1]), lambda: image)
    return image


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def shard_seed(seed, shard_index):
    """The seed of one shard's stream (shard 0 keeps ``seed``; None stays None)."""
    return None if seed is None else seed + 1000 * shard_index


def _shard(columns, shard_index, num_shards):
    """Every ``num_shards``-th element from ``shard_index`` (short lists are tiled first)."""
    if num_shards == 1:
        return columns
    count = len(columns[0])
    if count < num_shards:
        reps = -(-num_shards // count)
        columns = tuple(np.concatenate([np.asarray(c)] * reps) for c in columns)
    return tuple(np.asarray(c)[shard_index::num_shards] for c in columns)


def _training_stream(columns, load, batch_size, shuffle, repeat, seed, shard_index=0,
                     num_shards=1):
    """Shard, shuffle, repeat, parallel ``load``, batch and prefetch: what both pools share.

    ``load(element_seed, *columns)`` gets a [2] seed made of ``seed`` and the
    element's position in the stream (None when ``seed`` is None).
    """
    columns = _shard(columns, shard_index, num_shards)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(columns[0]), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if seed is None:
        ds = ds.map(lambda *element: load(None, *element), num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.enumerate().map(
            lambda index, element: load(tf.stack([tf.constant(seed, tf.int64), index]),
                                        *element),
            num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE).with_options(
        _options(seed is not None))


def strong_dataset(examples, num_classes, crop_size, batch_size, min_scale=0.5, max_scale=2.0,
                   shuffle=True, repeat=True, seed=None, shard_index=0, num_shards=1,
                   base_size=None, jitter=0.0):
    """Training stream of the strong pool: (image, mask) batches.

    Yields ``{"image": float32 [B, h, w, 3] 0..255, "mask": uint8 [B, h, w, 1]}``.
    With ``num_shards`` > 1 it reads only every ``num_shards``-th example from
    ``shard_index`` (one replica's share), with its own augmentation seed.
    With ``base_size``, scales are relative to the image at that long side.
    ``jitter``: the strength of ``color_jitter`` (0: none).
    """
    if not examples:
        raise ValueError("strong pool is empty")
    seed = shard_seed(seed, shard_index)
    columns = ([e.image_path for e in examples], [e.mask_path for e in examples])

    def load(element_seed, image_path, mask_path):
        image, mask = decode_image_and_mask(image_path, mask_path, num_classes)
        image, (mask,) = augment(image, (mask,), crop_size, min_scale, max_scale,
                                 seed=element_seed, base_size=base_size)
        return {"image": color_jitter(image, jitter, element_seed), "mask": mask}

    return _training_stream(columns, load, batch_size, shuffle, repeat, seed, shard_index,
                            num_shards)


def void_classes(mask, class_ids):
    """``mask`` with the pixels of ``class_ids`` set to void (255)."""
    if not class_ids:
        return mask
    hit = tf.reduce_any(tf.equal(mask[..., None], tf.constant(class_ids, mask.dtype)), axis=-1)
    return tf.where(hit, tf.constant(VOID_LABEL, mask.dtype), mask)


def weak_dataset(examples, num_classes, crop_size, batch_size, pseudo_label_paths=None,
                 min_scale=0.5, max_scale=2.0, shuffle=True, repeat=True, seed=None,
                 shard_index=0, num_shards=1, base_size=None, void_pseudo_classes=()):
    """Training stream of the weak pool: images with image-level labels.

    Yields ``{"image", "labels": float32 [B, num_classes - 1] multi-hot}`` and, given
    ``pseudo_label_paths`` (one per example), ``"mask"`` with the pseudo-labels,
    augmented like the strong stream; pseudo-label pixels of
    ``void_pseudo_classes`` (class ids) become void. Without pseudo-labels (the L-Net's
    classifier stream) every image is shown whole (``whole_image``), so its
    labels always describe what is in the batch. The weak examples carry no
    mask path, so nothing here can read a weak mask.
    """
    if not examples:
        raise ValueError("weak pool is empty")
    seed = shard_seed(seed, shard_index)
    image_paths = [e.image_path for e in examples]
    labels = np.stack([multi_hot(e.labels, num_classes) for e in examples])
    columns = (image_paths, labels) if pseudo_label_paths is None else (
        image_paths, labels, list(pseudo_label_paths))

    def load(element_seed, image_path, label_vector, pseudo_path=None):
        if pseudo_path is None:
            image = whole_image(decode_image(image_path), crop_size, base_size, min_scale,
                                seed=element_seed)
            return {"image": image, "labels": label_vector}
        image, pseudo = decode_image_and_mask(image_path, pseudo_path, num_classes)
        pseudo = void_classes(pseudo, tuple(void_pseudo_classes))
        image, (pseudo,) = augment(image, (pseudo,), crop_size, min_scale, max_scale,
                                   seed=element_seed)
        return {"image": image, "labels": label_vector, "mask": pseudo}

    return _training_stream(columns, load, batch_size, shuffle, repeat, seed, shard_index,
                            num_shards)


def zip_streams(strong, weak):
    """One dataset yielding ``(strong_batch, weak_batch)`` per train step."""
    return tf.data.Dataset.zip((strong, weak))


def eval_dataset(records, num_classes, batch_size=1, max_size=None):
    """Deterministic evaluation stream in list order, no augmentation.

    Images keep their own size (batch_size 1), or are padded to ``max_size``
    (height, width) with 255 labels so that batches can be formed.
    Yields ``{"image": float32 [B, H, W, 3], "mask": uint8 [B, H, W, 1]}``.
    """
    image_paths = [r.image_path for r in records]
    mask_paths = [r.mask_path for r in records]
    if any(p is None for p in mask_paths):
        raise ValueError("evaluation needs a mask for every image")
    ds = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))

    def load(image_path, mask_path):
        image, mask = decode_image_and_mask(image_path, mask_path, num_classes)
        image = tf.cast(image, tf.float32)
        if max_size is not None:
            shape = tf.shape(image)
            pads = [[0, max_size[0] - shape[0]], [0, max_size[1] - shape[1]], [0, 0]]
            mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)
            image = tf.pad(image - mean, pads) + mean
            mask = tf.cast(tf.pad(tf.cast(mask, tf.int32) - VOID_LABEL, pads) + VOID_LABEL,
                           tf.uint8)
        return {"image": image, "mask": mask}

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
