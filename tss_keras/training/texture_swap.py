"""Object texture swap: the agnostic head has to find objects by their outline, not their look.

The agnostic head learns objectness from strong-class masks only, so it can learn "the strong
classes' textures are foreground" and miss a weak object that looks different. A swapped
image keeps its mask and its background, but its objects are filled with another image's
pixels at the same place: only the outline still says where the object is.

Void pixels are filled too: in VOC-layout masks they are mostly the band round each object's
edge, and an unswapped band would leave a rim that tells the head where a swapped object is.
"""

import tensorflow as tf


def swap_object_textures(images, masks, swapped):
    """Fills the foreground of the images marked ``swapped`` with the next image's pixels there.

    Args:
        images: [B, H, W, 3] images.
        masks: [B, H, W, 1] class masks (0 background, ``VOID_LABEL`` void, else a class).
        swapped: [B] bool, which images get the swap.

    Returns:
        [B, H, W, 3]: the next image of the batch (in batch order, wrapping round) gives its
        pixels inside each swapped image's objects and void; the background and the other
        images are unchanged (a batch of one is returned as it is).
    """
    foreground = (masks[..., 0] > 0) & swapped[:, None, None]
    donors = tf.roll(images, shift=-1, axis=0)
    return tf.where(foreground[..., None], donors, images)


def draw_swapped(batch_size, fraction, step):
    """[batch_size] bool: which images of this replica's batch are swapped at ``step``.

    Each image is swapped with probability ``fraction``; the draw is seeded by the step and
    the replica, so a run is reproducible and replicas draw differently.
    """
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica is not None else 0
    seed = tf.stack([tf.cast(step, tf.int32), tf.cast(replica_id, tf.int32) + 7919])
    return tf.random.stateless_uniform([batch_size], seed) < fraction
