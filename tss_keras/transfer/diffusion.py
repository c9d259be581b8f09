"""Self-diffusion: CAMs spread over the image, guided by the agnostic map, as a few batched TF ops.

*(choice)* The paper gives no equations; this is a random walk on a local
pixel-affinity graph (after Wang & Tu's self-diffusion), on a working grid
whose long side has a fixed number of cells, so every distance is relative
to the image:

- Affinity between a cell and each neighbour within ``radius`` cells is
  ``exp(-|dc|^2 / 2 sc^2) * exp(-|df|^2 / 2 sf^2)`` over colour and/or
  L-Net features. The scales ``sc`` and ``sf`` are multiples
  (``color_scale``, ``feature_scale``) of the image's own median distance
  between neighbouring cells, so a textured photograph and a flat drawing
  get comparable graphs. L-Net features are projected to a few principal
  components per image first (their width does not matter).
- ``P = D^-1 W``; ``S <- (1 - anchor) P S + anchor S0`` for ``iterations``
  steps: with ``anchor`` > 0 the walk restarts at its seeds (label
  propagation with restart), so diffusion refines evidence instead of
  washing it out.
- *(choice)* An image with at least one label contains an object, so the
  agnostic map is first rescaled towards a peak of 1: ``M <- min(1, M /
  max(M)^presence)``. A class the agnostic head has never seen (it learns
  objectness from strong classes only) often gets a faint but well-placed
  response; ``presence`` = 1 trusts its shape rather than its height.
  (Leave-one-domain-out, this raised weak mIoU on every domain of the suite.)
  With ``presence_on`` = "evidence" the rescaling applies to F (next
  item) instead of M, so where M is flat and near 0 the CAMs hold the
  object rather than M's noise. With ``class_presence`` = b > 0 the peak
  is also taken per labelled class, over the share of the foreground that
  each class's evidence E_k owns (``presence_scaled``).
- Foreground evidence joins the agnostic map M and the image's CAMs A_k
  (normalised from their ``cam_floor`` quantile, 0 below it, to 1 at their
  peak) as a probabilistic OR, ``F = 1 - (1 - M)(1 - w
  max_k A_k)`` with ``w = cam_weight``, so an object the agnostic head
  misses can still be found by its class's CAM.
- *(choice)* With ``saliency`` = s > 0, the boundary prior of salient-object
  detection joins F too, where the labels' CAMs point: ``F <- 1 - (1 - F)(1
  - s B max_k A_k)``, where B is high for colours the image's outer band
  does not have (``border_saliency``). Backgrounds run to the image's
  border, pasted and photographed objects mostly do not, so a weak object
  that neither the agnostic head nor its CAM answers strongly on is still
  found when its colour stands apart from the border's.
- *(choice)* The image's own colours then correct F where it is coarse (the
  L-Net's maps come from stride-8 features, so a ring's hole or a gap
  between objects is blurred over): with ``color_model`` = c > 0, ``F <- (1
  - c) F + c P(fg | colour)``, where P comes from colour histograms of the
  image's foreground and background cells, each weighed by F (``bins``^3
  bins; the mean of F is the prior), as GrabCut does with its colour
  models. Unlike the walk below, it is not local: a hole's background
  colour is recognised as background however far away the rest of the
  background is.
- Class evidence E_k is A_k, or with ``prototype_weight`` = b > 0, ``(1 - b)
  A_k + b S_k`` where S_k is a softmax over the image's labels of the
  pixel's feature similarity to each class's prototype (tss_keras.transfer.
  prototypes; temperature ``PROTOTYPE_TEMPERATURE``).
- F and the class seeds ``F * E_k`` diffuse; the scores are ``1 - F'`` for
  background and ``F' * E'_k / sum_j E'_j`` for each label k.
- A pixel takes the argmax over background and the image's labels, and is
  void (255) when the winning score is below ``confidence``. Classes
  outside the image's labels never score.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tss_keras.constants import VOID_LABEL
from tss_keras.errors import UsageError

FEATURE_SOURCES = ("color", "features", "both")
# What the presence rescaling applies to: the agnostic map alone, or the foreground evidence
# after the CAMs have joined it (so that CAMs alone can hold a labelled object).
PRESENCE_TARGETS = ("agnostic", "evidence")
PROTOTYPE_TEMPERATURE = 0.1  # cosine similarities differ by a few tenths between classes


@dataclasses.dataclass(frozen=True)
class DiffusionParams:
    """The parameters of one diffusion (see the module docstring)."""

    radius: int = 3
    iterations: int = 20
    anchor: float = 0.0
    color_scale: float = 1.0
    feature_scale: float = 1.0
    features: str = "both"
    confidence: float = 0.5
    cam_weight: float = 1.0
    cam_power: float = 1.0
    cam_floor: float = 0.0
    prototype_weight: float = 0.0
    presence: float = 0.0
    saliency: float = 0.0
    color_model: float = 0.0
    class_presence: float = 0.0
    presence_on: str = "agnostic"

    def __post_init__(self):
        if self.features not in FEATURE_SOURCES:
            raise UsageError(f"--diffusion_features: {self.features!r} is not one of "
                             f"{', '.join(FEATURE_SOURCES)}")
        if self.presence_on not in PRESENCE_TARGETS:
            raise UsageError(f"--diffusion_presence_on: {self.presence_on!r} is not one of "
                             f"{', '.join(PRESENCE_TARGETS)}")


def neighbourhood(values, radius):
    """[B, h, w, (2r+1)^2, C]: each cell's window, zero outside the grid.

    Window order is row-major over offsets (dy, dx) from (-r, -r) to (r, r).
    """
    size = 2 * radius + 1
    shape = tf.shape(values)
    patches = tf.image.extract_patches(values, sizes=[1, size, size, 1], strides=[1, 1, 1, 1],
                                       rates=[1, 1, 1, 1], padding="SAME")
    return tf.reshape(patches, tf.concat([shape[:3], [size * size, shape[3]]], axis=0))


def median_neighbour_distance(guide):
    """[B] median squared distance between horizontally and vertically adjacent cells."""
    right = tf.reduce_sum(tf.square(guide[:, :, 1:] - guide[:, :, :-1]), axis=-1)
    down = tf.reduce_sum(tf.square(guide[:, 1:] - guide[:, :-1]), axis=-1)
    batch = tf.shape(guide)[0]
    distances = tf.concat([tf.reshape(right, [batch, -1]), tf.reshape(down, [batch, -1])], axis=1)
    distances = tf.sort(distances, axis=1)
    median = distances[:, tf.shape(distances)[1] // 2]
    return tf.maximum(median, 1e-6)


def affinity(guides, radius, scales):
    """Row-normalised transition weights [B, h, w, (2r+1)^2] over each cell's window.

    Args:
        guides: list of [B, h, w, C_i] maps (colour, features).
        radius: neighbourhood radius in cells.
        scales: one scale per guide, in the guide's units, [B] or scalar.
    """
    log_w = 0.0
    for guide, scale in zip(guides, scales):
        window = neighbourhood(guide, radius)
        distance = tf.reduce_sum(tf.square(window - guide[:, :, :, None, :]), axis=-1)
        scale = tf.reshape(tf.cast(scale, tf.float32), [-1, 1, 1, 1])
        log_w -= distance / (2.0 * scale * scale)
    inside = neighbourhood(tf.ones_like(guides[0][..., :1]), radius)[..., 0]
    weights = tf.exp(log_w) * inside
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def propagate(scores, transition, radius, iterations, anchor=0.0):
    """``S <- (1 - anchor) P S + anchor S0``, ``iterations`` times, on [B, h, w, C] scores.

    A ``tf.while_loop`` over iterations: the graph has one body, however many
    iterations run. *(choice)* The body pads the scores once and adds one
    shifted slice per window offset, weighted by that offset's transition
    column. That traces (2r+1)^2 small multiply-adds, once; it ran 2.4-3x
    faster on CPU than gathering each cell's window with ``extract_patches``
    (``neighbourhood``), which copies the whole window for every channel.
    """
    seeds = scores
    anchor = tf.cast(anchor, scores.dtype)
    size = 2 * radius + 1
    height, width = tf.shape(scores)[1], tf.shape(scores)[2]

    def body(i, current):
        padded = tf.pad(current, [[0, 0], [radius, radius], [radius, radius], [0, 0]])
        spread = tf.add_n([
            transition[..., offset:offset + 1]
            * padded[:, offset // size:offset // size + height,
                     offset % size:offset % size + width, :]
            for offset in range(size * size)])
        return i + 1, (1.0 - anchor) * spread + anchor * seeds

    _, result = tf.while_loop(lambda i, _: i < iterations, body,
                              (tf.constant(0), scores),
                              shape_invariants=(tf.TensorShape([]), scores.shape))
    return result


PROJECTED_DIMS = 64


def random_projection(features):
    """Features [B, h, w, C], with C > 64 reduced to 64 by a fixed (seeded) random projection.

    An orthonormal random projection keeps distances and angles approximately
    (Johnson-Lindenstrauss), so ResNet's 2048 channels cost no more than 64.
    """
    features = tf.cast(features, tf.float32)
    channels = features.shape[-1]
    if channels <= PROJECTED_DIMS:
        return features
    rng = np.random.default_rng(0)
    projection, _ = np.linalg.qr(rng.normal(size=(channels, PROJECTED_DIMS)))
    return tf.einsum("bhwc,cd->bhwd", features, tf.constant(projection, tf.float32))


def principal_components(features, dims):
    """Features [B, h, w, C] projected on their ``dims`` leading principal components per image.

    Wide features first go through ``random_projection``, which makes the
    per-image eigen-decomposition at most 64 x 64.
    """
    features = random_projection(features)
    channels = features.shape[-1]
    if dims >= channels:
        return features
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1, channels])
    flat = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
    covariance = tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.shape(flat)[1], tf.float32)
    _, vectors = tf.linalg.eigh(covariance)
    leading = vectors[:, :, -dims:]
    return tf.reshape(tf.matmul(flat, leading), tf.concat([shape[:3], [dims]], axis=0))


def normalized_cams(cams, labels, power=1.0, floor=0.0):
    """CAMs scaled to [0, 1] per image and class (floor to max), zeroed for absent labels.

    *(choice)* Scaled by their own range rather than ``relu(cam) / max``: a
    class the classifier is unsure of can have a map that is negative
    everywhere yet highest on the object, and the image is labelled with it,
    so it is there somewhere; ReLU would erase that map. The low end is the
    map's ``floor`` quantile (0: its minimum): with ``floor`` = q, the
    ``q`` share of the map's cells that answer least give no evidence, so a
    diffuse map does not light the whole image.
    """
    cams = tf.cast(cams, tf.float32)
    floor = tf.cast(floor, tf.float32)

    def quantile():  # sorting costs ~7x the minimum, so only a floor above 0 pays for it
        shape = tf.shape(cams)
        flat = tf.sort(tf.reshape(cams, [shape[0], -1, shape[3]]), axis=1)
        cells = tf.shape(flat)[1]
        index = tf.cast(tf.round(floor * tf.cast(cells - 1, tf.float32)), tf.int32)
        return tf.gather(flat, tf.clip_by_value(index, 0, cells - 1), axis=1)[:, None, None, :]

    low = tf.cond(floor > 0, quantile, lambda: tf.reduce_min(cams, axis=[1, 2], keepdims=True))
    high = tf.reduce_max(cams, axis=[1, 2], keepdims=True)
    cams = tf.clip_by_value(tf.math.divide_no_nan(cams - low, high - low), 0.0, 1.0)
    cams = tf.pow(cams, tf.cast(power, tf.float32))
    return cams * labels[:, None, None, :]


def presence_scaled(foreground, labels, presence, shares=None, by_class=0.0):
    """Foreground maps [B, h, w, 1] divided by ``peak ** presence`` in each labelled image.

    Images without labels are left as they are (nothing says they hold an
    object). The result is capped at 1.

    With ``shares`` ([B, h, w, K]: each labelled class's share of the class
    evidence at each cell, summing to 1 over the labels) and ``by_class`` > 0,
    the peak is also taken per class: every labelled class holds an object, so
    the foreground a class owns is scaled by that class's own peak, and a weak
    object next to a confident strong one is not left faint. ``by_class``
    mixes the two gains (0: one peak per image, 1: one per class).
    """
    labelled = tf.cast(tf.reduce_max(labels, axis=-1) > 0, tf.float32)[:, None, None, None]
    exponent = -tf.cast(presence, tf.float32) * labelled
    peak = tf.maximum(tf.reduce_max(foreground, axis=[1, 2, 3], keepdims=True), 1e-3)
    gain = tf.pow(peak, exponent)
    if shares is not None:
        owned = foreground * shares  # [B, h, w, K]
        class_peak = tf.maximum(tf.reduce_max(owned, axis=[1, 2], keepdims=True), 1e-3)
        class_gain = tf.reduce_sum(shares * tf.pow(class_peak, exponent), axis=-1,
                                   keepdims=True)
        by_class = tf.cast(by_class, tf.float32)
        gain = (1.0 - by_class) * gain + by_class * class_gain
    return tf.minimum(foreground * gain, 1.0)


def evidence_shares(seeds, labels):
    """[B, h, w, K] each labelled class's share of the class evidence; uniform where there is none."""
    label_mask = labels[:, None, None, :]
    total = tf.reduce_sum(seeds, axis=-1, keepdims=True)
    uniform = label_mask / tf.maximum(tf.reduce_sum(label_mask, axis=-1, keepdims=True), 1.0)
    return tf.where(total > 1e-6, seeds / tf.maximum(total, 1e-6), uniform)


COLOR_BINS = 8  # per channel: 512 bins, a few cells each on a 64-cell grid
SALIENCY_BORDER = 0.125  # the outer band, as a share of each side, that stands for background


def color_foreground(colour, foreground, bins=COLOR_BINS):
    """Foreground probability [B, h, w, 1] of each cell from the image's own colour histograms.

    The cells' colours (RGB 0..255, [B, h, w, 3]) fall into ``bins``^3
    bins; the foreground and background histograms weigh each cell by
    ``foreground`` and ``1 - foreground``; a cell's probability is Bayes'
    rule with the image's mean foreground as prior.
    """
    levels = tf.cast(tf.clip_by_value(colour * (bins / 256.0), 0.0, bins - 1.0), tf.int32)
    index = levels[..., 0] * bins * bins + levels[..., 1] * bins + levels[..., 2]
    members = tf.one_hot(index, bins ** 3, dtype=tf.float32)  # [B, h, w, bins^3]
    fg_hist = tf.reduce_sum(members * foreground, axis=[1, 2]) + 1e-3
    bg_hist = tf.reduce_sum(members * (1.0 - foreground), axis=[1, 2]) + 1e-3
    fg_hist /= tf.reduce_sum(fg_hist, axis=-1, keepdims=True)
    bg_hist /= tf.reduce_sum(bg_hist, axis=-1, keepdims=True)
    prior = tf.reduce_mean(foreground, axis=[1, 2, 3])[:, None, None]
    fg_like = tf.gather(fg_hist, index, batch_dims=1) * prior
    bg_like = tf.gather(bg_hist, index, batch_dims=1) * (1.0 - prior)
    return (fg_like / (fg_like + bg_like))[..., None]


def border_saliency(colour, border=SALIENCY_BORDER, bins=COLOR_BINS):
    """Saliency [B, h, w, 1] in 0..1 of each cell by the boundary prior.

    Colour histograms of the image's interior and of its outer band
    (``border`` of each side) give each cell ``P(interior | colour)`` by Bayes'
    rule (``color_foreground``); it is rescaled so that a colour as common on
    the band as inside scores 0 and a colour the band lacks scores 1. Only
    colours count, so the map depends on the image's content, not its size.

    Args:
        colour: RGB 0..255 [B, h, w, 3] on the working grid.
        border: width of the band as a share of each side (at least one cell).
        bins: histogram bins per channel.
    """
    shape = tf.shape(colour)
    height, width = shape[1], shape[2]

    def band(size):
        return tf.maximum(1, tf.cast(tf.round(tf.cast(size, tf.float32) * border), tf.int32))

    rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = ((rows >= band(height)) & (rows < height - band(height))
              & (cols >= band(width)) & (cols < width - band(width)))
    inside = tf.tile(tf.cast(inside, tf.float32)[None, ..., None], [shape[0], 1, 1, 1])
    interior = color_foreground(colour, inside, bins)
    share = tf.reduce_mean(inside, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(tf.math.divide_no_nan(interior - share, 1.0 - share), 0.0, 1.0)


def grid_size(height, width, cells):
    """(h, w) of a grid with ``cells`` on the image's long side, keeping its aspect."""
    scale = cells / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def prototype_share(features, prototypes, valid, labels, grid):
    """[B, gh, gw, K] softmax over the image's labels of feature-prototype similarity.

    Zero at every pixel of an image none of whose labels has a prototype.
    """
    from tss_keras.transfer.prototypes import projected_features

    projected = tf.image.resize(projected_features(features), grid, method="bilinear")
    projected = tf.math.l2_normalize(projected, axis=-1)
    similarity = tf.einsum("bhwc,kc->bhwk", projected, prototypes[1:])
    allowed = (labels > 0) & valid[None, 1:]
    logits = tf.where(allowed[:, None, None, :], similarity / PROTOTYPE_TEMPERATURE, -1e9)
    share = tf.nn.softmax(logits, axis=-1)
    return share * tf.cast(tf.reduce_any(allowed, axis=-1), tf.float32)[:, None, None, None]


def transfer_scores(images, foreground, cams, labels, features, params, grid, feature_dims=8,
                    prototypes=None, prototype_valid=None):
    """Class scores [B, gh, gw, K+1] (background first) on the working grid.

    Args:
        images: float [B, H, W, 3] RGB 0..255 (the L-Net's input).
        foreground: agnostic foreground probability [B, H', W', 1] (any size).
        cams: class activation maps [B, h', w', K] (any size).
        labels: multi-hot image labels [B, K] (foreground classes).
        features: L-Net features [B, h', w', C] (unused for ``color`` affinity).
        params: a DiffusionParams; its numbers may be tensors (one traced graph
            serves them all), ``radius`` and ``features`` shape the graph.
        grid: (gh, gw) working grid size.
        feature_dims: principal components of the features used in the affinity.
        prototypes, prototype_valid: class prototypes [K+1, C'] and which
            classes have one (``tss_keras.transfer.prototypes``); used with
            ``params.prototype_weight`` > 0.
    """
    labels = tf.cast(labels, tf.float32)
    fg = tf.image.resize(tf.cast(foreground, tf.float32), grid, method="area")
    cam_seeds = tf.image.resize(
        normalized_cams(cams, labels, params.cam_power, params.cam_floor), grid,
        method="bilinear")
    seeds = cam_seeds
    if prototypes is not None:
        share = prototype_share(features, prototypes, prototype_valid, labels, grid)
        has = tf.cast(tf.reduce_max(share, axis=[1, 2, 3], keepdims=True) > 0, tf.float32)
        weight = params.prototype_weight * has
        seeds = (1.0 - weight) * seeds + weight * share
    shares = evidence_shares(seeds, labels)
    if params.presence_on == "agnostic":
        fg = presence_scaled(fg, labels, params.presence, shares, params.class_presence)
    cam_peak = tf.reduce_max(cam_seeds, axis=-1, keepdims=True)
    fg = 1.0 - (1.0 - fg) * (1.0 - tf.minimum(cam_peak * params.cam_weight, 1.0))
    colour = tf.image.resize(tf.cast(images, tf.float32), grid, method="area")
    salient = border_saliency(colour) * cam_peak * params.saliency
    fg = 1.0 - (1.0 - fg) * (1.0 - tf.minimum(salient, 1.0))
    if params.presence_on == "evidence":
        fg = presence_scaled(fg, labels, params.presence, shares, params.class_presence)
    fg = (1.0 - params.color_model) * fg + params.color_model * color_foreground(colour, fg)
    seeds = seeds * fg
    if not (isinstance(params.iterations, int) and params.iterations == 0):
        guides, scales = [], []
        if params.features in ("color", "both"):
            guides.append(colour)
            scales.append(params.color_scale * tf.sqrt(median_neighbour_distance(colour)))
        if params.features in ("features", "both"):
            projected = principal_components(features, feature_dims)
            projected = tf.image.resize(projected, grid, method="bilinear")
            guides.append(projected)
            scales.append(params.feature_scale * tf.sqrt(median_neighbour_distance(projected)))
        transition = affinity(guides, params.radius, scales)
        diffused = propagate(tf.concat([fg, seeds], axis=-1), transition, params.radius,
                             params.iterations, params.anchor)
        fg, seeds = diffused[..., :1], diffused[..., 1:]
    return tf.concat([1.0 - fg, fg * evidence_shares(seeds, labels)], axis=-1)


def scores_to_labels(scores, labels, confidence=0.5):
    """Pseudo-label [B, H, W] int32: argmax over background and the image's labels.

    Pixels whose winning score is below ``confidence`` become void (255).
    """
    labels = tf.cast(labels, scores.dtype)
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
