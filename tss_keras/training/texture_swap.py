"""Object texture swap: the agnostic head has to find objects by their outline, not their look.

The agnostic head learns objectness from strong-class masks only, so it can learn "the strong
classes' textures are foreground" and miss a weak object that looks different. A swapped
image keeps its mask and its background, but its objects are filled with a random texture:
only the outline, and that the inside differs from its surround, still say where an object is.

The fill is synthetic on purpose. Filled with another training image's pixels (mostly
background photographs), objects look like the backgrounds the head must reject elsewhere,
and it learned to find fewer objects (measured in README).

Void pixels are filled too: in VOC-layout masks they are mostly the band round each object's
edge, and an unfilled band would leave a rim that tells the head where a swapped object is.
"""

import tensorflow as tf

# The fine grain's cells per side, relative to the image's side.
GRAIN_CELLS = 0.25
# Cells per side of the smooth colour field.
FIELD_CELLS = 4
# Largest amplitude (0..255 scale) of the colour field and of the grain.
MAX_AMPLITUDE = 70.0


def swap_seed(step):
    """The stateless seed of one step's swap on this replica (replicas draw differently)."""
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica is not None else 0
    return tf.stack([tf.cast(step, tf.int32), tf.cast(replica_id, tf.int32) + 7919])


def draw_swapped(batch_size, fraction, seed):
    """[batch_size] bool: which images are swapped, each with probability ``fraction``."""
    return tf.random.stateless_uniform([batch_size], seed) < fraction


def random_textures(batch_size, height, width, seed):
    """[batch_size, height, width, 3] random textures on the 0..255 scale.

    Each is a random colour, plus a smooth colour field (``FIELD_CELLS`` cells per side),
    plus a fine grain (cells a quarter of the side's pixels), with random amplitudes.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    base = tf.random.stateless_uniform([batch_size, 1, 1, 3], seeds[0], 0.0, 255.0)
    field = tf.random.stateless_uniform([batch_size, FIELD_CELLS, FIELD_CELLS, 3], seeds[1],
                                        -1.0, 1.0)
    grain_cells = tf.maximum(tf.cast(tf.cast(tf.stack([height, width]), tf.float32)
                                     * GRAIN_CELLS, tf.int32), 1)
    grain = tf.random.stateless_uniform(tf.concat([[batch_size], grain_cells, [3]], 0),
                                        seeds[2], -1.0, 1.0)
    amplitudes = tf.random.stateless_uniform([batch_size, 1, 1, 2], seeds[3], 0.0,
                                             MAX_AMPLITUDE)
    texture = (base + amplitudes[..., :1] * tf.image.resize(field, [height, width])
               + amplitudes[..., 1:] * tf.image.resize(grain, [height, width]))
    return tf.clip_by_value(texture, 0.0, 255.0)


def swap_object_textures(images, masks, swapped, textures):
    """Fills the objects and void of the images marked ``swapped`` with ``textures``.

    Args:
        images: [B, H, W, 3] images.
        masks: [B, H, W, 1] class masks (0 background, else a class or void).
        swapped: [B] bool, which images get the swap.
        textures: [B, H, W, 3] the fills (``random_textures``).

    Returns:
        [B, H, W, 3]: each swapped image with ``textures`` inside its objects and void;
        the background and the other images are unchanged.
    """
    inside = (masks[..., 0] > 0) & swapped[:, None, None]
    return tf.where(inside[..., None], tf.cast(textures, images.dtype), images)


def swap_batch(images, masks, fraction, step):
    """(images with a ``fraction`` of them swapped at ``step``, [B] bool which were)."""
    shape = tf.shape(images)
    seed = swap_seed(step)
    swapped = draw_swapped(shape[0], fraction, seed)
    textures = random_textures(shape[0], shape[1], shape[2], seed + 1)
    return swap_object_textures(images, masks, swapped, textures), swapped
