"""Self-diffusion label transfer: CAMs spread over the image, guided by the agnostic map.

*(choice, design.md §1)*: a random walk on a local pixel-affinity graph on a
downsampled grid. Affinity between a pixel and each neighbour within
``radius`` is ``exp(-|dc|^2 / 2 sc^2) * exp(-|df|^2 / 2 sf^2)`` over colour
and/or L-Net features; ``P = D^-1 W``; ``S_{t+1} = P S_t`` for
``iterations`` steps. Foreground evidence joins the agnostic map M and the
CAMs A_k (normalised to max 1) of the image's labels as a probabilistic OR,
``F = 1 - (1 - M)(1 - w max_k A_k)`` with ``w = cam_weight``, so an object
the agnostic head misses can still be found by its class's CAM. Two things
diffuse: F and the class seeds ``F * A_k``. The final scores are
``1 - M'`` for background and ``M' * A'_k / sum_j A'_j`` for each label k;
a pixel takes the argmax, and becomes void (255) when the winning score is
below ``confidence``. Classes outside the image's labels never score.
Everything is batched TF ops.
"""

import tensorflow as tf

from tss_keras.constants import VOID_LABEL
from tss_keras.errors import UsageError


def _offsets(radius):
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def _shift(padded, dy, dx, radius, height, width):
    """The [B, h, w, C] window of ``padded`` displaced by (dy, dx)."""
    return padded[:, radius + dy:radius + dy + height, radius + dx:radius + dx + width, :]


def affinity(guides, radius, scales):
    """Row-normalised transition weights [B, h, w, O] over the (2r+1)^2 window.

    Args:
        guides: list of [B, h, w, C_i] feature maps (colour, features).
        radius: neighbourhood radius in grid pixels.
        scales: one affinity scale per guide.
    """
    shape = tf.shape(guides[0])
    height, width = shape[1], shape[2]
    valid = tf.pad(tf.ones_like(guides[0][..., :1]), [[0, 0], [radius] * 2, [radius] * 2, [0, 0]])
    padded = [tf.pad(g, [[0, 0], [radius] * 2, [radius] * 2, [0, 0]]) for g in guides]
    weights = []
    for dy, dx in _offsets(radius):
        log_w = tf.zeros_like(guides[0][..., 0])
        for guide, pad, scale in zip(guides, padded, scales):
            diff = guide - _shift(pad, dy, dx, radius, height, width)
            log_w -= tf.reduce_sum(tf.square(diff), axis=-1) / (2.0 * scale * scale)
        weights.append(tf.exp(log_w) * _shift(valid, dy, dx, radius, height, width)[..., 0])
    weights = tf.stack(weights, axis=-1)
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def propagate(scores, transition, radius, iterations):
    """Runs ``S <- P S`` ``iterations`` times on [B, h, w, C] scores."""
    shape = tf.shape(scores)
    height, width = shape[1], shape[2]
    offsets = _offsets(radius)
    for _ in range(iterations):
        padded = tf.pad(scores, [[0, 0], [radius] * 2, [radius] * 2, [0, 0]])
        scores = tf.add_n([transition[..., i:i + 1] * _shift(padded, dy, dx, radius, height, width)
                           for i, (dy, dx) in enumerate(offsets)])
    return scores


def normalized_cams(cams, labels, power=1.0):
    """ReLU CAMs scaled to max 1 per image and class, zeroed for absent labels."""
    cams = tf.nn.relu(tf.cast(cams, tf.float32))
    cams = tf.math.divide_no_nan(cams, tf.reduce_max(cams, axis=[1, 2], keepdims=True))
    if power != 1.0:
        cams = tf.pow(cams, power)
    return cams * labels[:, None, None, :]


def transfer_scores(images, foreground, cams, labels, features=None, radius=7, iterations=20,
                    color_scale=20.0, feature_scale=0.5, feature_source="both",
                    working_stride=4, cam_power=1.0, cam_weight=1.0):
    """Class scores [B, H, W, K+1] (background first) at the input size.

    Args:
        images: float [B, H, W, 3] RGB 0..255.
        foreground: agnostic foreground probability [B, H, W, 1].
        cams: class activation maps [B, h', w', K] (any resolution).
        labels: multi-hot image labels [B, K] (foreground classes).
        features: L-Net features [B, h', w', C], needed unless
            ``feature_source == "color"``.
        radius, iterations, color_scale, feature_scale, feature_source,
        working_stride, cam_power, cam_weight: see the module docstring.
    """
    if feature_source not in ("color", "features", "both"):
        raise UsageError(f"--diffusion_features: {feature_source!r} is not color, features or both")
    size = tf.shape(images)[1:3]
    work = tf.maximum(size // working_stride, 1)
    fg = tf.image.resize(tf.cast(foreground, tf.float32), work, method="area")
    seeds = tf.image.resize(normalized_cams(cams, labels, cam_power), work, method="bilinear")
    if cam_weight:
        cam_evidence = tf.reduce_max(seeds, axis=-1, keepdims=True) * cam_weight
        fg = 1.0 - (1.0 - fg) * (1.0 - tf.minimum(cam_evidence, 1.0))
    seeds = seeds * fg
    if iterations > 0:
        guides, scales = [], []
        if feature_source in ("color", "both"):
            guides.append(tf.image.resize(tf.cast(images, tf.float32), work, method="area"))
            scales.append(color_scale)
        if feature_source in ("features", "both"):
            feats = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
            guides.append(tf.image.resize(feats, work, method="bilinear"))
            scales.append(feature_scale)
        transition = affinity(guides, radius, scales)
        diffused = propagate(tf.concat([fg, seeds], axis=-1), transition, radius, iterations)
        fg, seeds = diffused[..., :1], diffused[..., 1:]
    label_mask = labels[:, None, None, :]
    total = tf.reduce_sum(seeds, axis=-1, keepdims=True)
    uniform = label_mask / tf.maximum(tf.reduce_sum(label_mask, axis=-1, keepdims=True), 1.0)
    class_share = tf.where(total > 1e-6, seeds / tf.maximum(total, 1e-6), uniform)
    scores = tf.concat([1.0 - fg, fg * class_share], axis=-1)
    return tf.image.resize(scores, size, method="bilinear")


def scores_to_labels(scores, labels, confidence=0.6):
    """Pseudo-label [B, H, W] int32: argmax over background and the image's labels.

    Pixels whose winning score is below ``confidence`` become void (255).
    """
    allowed = tf.concat([tf.ones_like(labels[:, :1]), labels], axis=-1)[:, None, None, :]
    masked = tf.where(allowed > 0, scores, -1.0)
    winner = tf.argmax(masked, axis=-1, output_type=tf.int32)
    best = tf.reduce_max(masked, axis=-1)
    return tf.where(best < confidence, VOID_LABEL, winner)


def cam_argmax_labels(cams, labels, size, background_threshold=0.25):
    """Baseline without the L-Net's agnostic map: CAM argmax, background below a threshold."""
    cams = tf.image.resize(normalized_cams(cams, labels), size, method="bilinear")
    background = tf.fill(tf.shape(cams[..., :1]), background_threshold)
    scores = tf.concat([background, cams], axis=-1)
    return scores_to_labels(scores, labels, confidence=0.0)
