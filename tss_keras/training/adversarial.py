"""What the discriminator sees: real and fake maps for each discriminator design.

*(choice)* The paper does not say how real and fake maps are formed; these
are the designs behind ``--discriminator``:

``onehot``
    Real: one-hot ground truth of strong images; fake: P-Net softmax (Luc et
    al. 2016, AdvSemiSeg). The discriminator can tell them apart by sharpness
    alone (one-hot maps have no uncertainty), and it sees only strong
    classes as real.
``matched``
    Real maps carry the P-Net's own per-pixel confidence, moved onto the true
    class: with ``c`` the largest probability of the prediction at a pixel,
    the true class gets ``c`` and the other classes share ``1 - c`` in the
    prediction's proportions. Where the P-Net is right, real equals fake; a
    real map differs only where the prediction's structure is wrong, so
    sharpness tells the discriminator nothing.
``agnostic``
    One channel, the foreground probability ``1 - p(background)``, real maps
    confidence-matched the same way. It judges the shape of the
    foreground/background split only, so it cannot learn which classes are
    strong, and its real maps can come from any masks: in the 0 % setting
    they come from the agnostic set (``--agnostic_data_dir``).

In every design a void ground-truth pixel copies the prediction, so void
carries no cue. ``onehot`` and ``matched`` see the foreground channels in a
random order per step (``--d_shuffle_classes``), so they cannot tell weak
classes by their channel either.
"""

import tensorflow as tf

from tss_keras.constants import VOID_LABEL

DESIGNS = ("onehot", "matched", "agnostic")
DOWNSAMPLINGS = ("average", "fold")


def channels(design, num_classes):
    """Input channels of the discriminator's map for a design."""
    return 1 if design == "agnostic" else num_classes


def _truth(mask, num_classes, dtype):
    """(one-hot [B, H, W, C], void [B, H, W, 1] bool) from a mask [B, H, W, 1]."""
    mask = tf.cast(mask[..., 0], tf.int32)
    one_hot = tf.one_hot(mask, num_classes, dtype=dtype)  # void rows are all zero
    return one_hot, (mask == VOID_LABEL)[..., None]


def onehot_real(mask, fake):
    """One-hot ground truth; void pixels copy the (detached) prediction."""
    one_hot, void = _truth(mask, fake.shape[-1], fake.dtype)
    return tf.where(void, fake, one_hot)


def matched_real(mask, fake):
    """Ground truth with the prediction's per-pixel confidence (see module docstring)."""
    one_hot, void = _truth(mask, fake.shape[-1], fake.dtype)
    confidence = tf.reduce_max(fake, axis=-1, keepdims=True)
    others = fake * (1.0 - one_hot)
    others = tf.math.divide_no_nan(others, tf.reduce_sum(others, axis=-1, keepdims=True))
    real = one_hot * confidence + others * (1.0 - confidence)
    return tf.where(void, fake, real)


def foreground(probabilities):
    """Foreground probability ``1 - p(background)``, [B, H, W, 1]."""
    return 1.0 - probabilities[..., :1]


def agnostic_real(mask, fake_foreground):
    """Foreground ground truth (any class > 0) with the prediction's confidence; void copies it."""
    mask = tf.cast(mask, tf.int32)
    is_foreground = (mask != 0) & (mask != VOID_LABEL)
    confidence = tf.maximum(fake_foreground, 1.0 - fake_foreground)
    real = tf.where(is_foreground, confidence, 1.0 - confidence)
    return tf.where(mask == VOID_LABEL, fake_foreground, real)


def real_and_fake(design, mask, probabilities):
    """(real, fake) maps of the masked images for a design; both detached from the P-Net.

    Args:
        design: one of DESIGNS.
        mask: ground truth [B, H, W, 1] of the images whose real maps are made.
        probabilities: the P-Net's softmax on the same images [B, H, W, C].
    """
    fake = tf.stop_gradient(probabilities)
    if design == "agnostic":
        fake = foreground(fake)
        return agnostic_real(mask, fake), fake
    if design == "matched":
        return matched_real(mask, fake), fake
    return onehot_real(mask, fake), fake


def view(design, probabilities):
    """The discriminator's view of P-Net probabilities (gradient kept)."""
    return foreground(probabilities) if design == "agnostic" else probabilities


def downsample(maps, factor, by="average"):
    """Maps [B, H, W, C] at 1/``factor`` of their size, where the discriminator sees them.

    ``by="average"``: each ``factor`` x ``factor`` block averaged (C channels);
    fine structure inside a block (a thin part, a boundary's exact place) is
    lost. ``by="fold"``: each block's pixels become channels (``C *
    factor**2``, space to depth after zero-padding H and W to multiples of
    ``factor``), so the discriminator still sees every pixel while its layers
    run at the small size. Both have a gradient, which the P-Net's adversarial
    loss needs.
    """
    if factor <= 1:
        return maps
    if by == "fold":
        shape = tf.shape(maps)
        pad_h, pad_w = (-shape[1]) % factor, (-shape[2]) % factor
        maps = tf.pad(maps, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        return tf.nn.space_to_depth(maps, factor)
    return tf.nn.avg_pool2d(maps, factor, factor, padding="SAME")


def input_channels(design, num_classes, factor, by="average"):
    """(map, image) channels the discriminator takes after ``downsample(.., factor, by)``."""
    fold = factor * factor if by == "fold" and factor > 1 else 1
    return channels(design, num_classes) * fold, 3 * fold
