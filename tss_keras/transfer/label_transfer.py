"""LabelTransfer: from an image and its image-level labels to a pixel pseudo-label.

The L-Net sees every image resized to the canonical long side it was
trained at (``LNetInput.image_size``), so its behaviour does not depend on
how large an image is, and memory per image is bounded. (CAMs read from a
second pass at the classifier's whole-image training size were coarser and
localised worse on the domain suite, so one pass serves everything.) Diffusion then runs on a grid of ``grid`` cells along the long
side; the scores are resized to the image's own size at the end.
"""

import dataclasses
import json
import typing

import keras
import numpy as np
import tensorflow as tf

from tss_keras.errors import DataError
from tss_keras.files import write_json

from tss_keras.transfer.diffusion import grid_size, scores_to_labels, transfer_scores

# DiffusionParams fields fed to the traced graph as float tensors (not baked in).
NUMERIC_PARAMS = ("anchor", "color_scale", "feature_scale", "cam_weight", "cam_power",
                  "cam_floor", "prototype_weight", "presence", "saliency", "color_model",
                  "class_presence")


SIZE_STEP = 8


def canonical_size(height, width, image_size):
    """(h, w) with the long side ``image_size`` and about the image's aspect ratio.

    The short side is rounded to a multiple of 8 (a stretch of at most 4
    pixels), so that images of similar shape share a size and a batch.
    """
    scale = image_size / max(height, width)
    short = max(SIZE_STEP, int(round(min(height, width) * scale / SIZE_STEP)) * SIZE_STEP)
    short = min(short, image_size)
    return (image_size, short) if height >= width else (short, image_size)


@dataclasses.dataclass(frozen=True)
class LNetInput:
    """The size an L-Net was trained at (written by the lnet stage).

    Attributes:
        image_size: canonical long side of the images (the mask stream's scale).
    """

    image_size: int

    def write(self, path):
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: missing; the L-Net was trained by another version of "
                            f"tss_keras (re-run the lnet stage with --overwrite)") from None
        return cls(int(data["image_size"]))


def _open_spec(tensor):
    """A TensorSpec of ``tensor`` with every dimension but the last left unknown."""
    shape = tensor.shape
    if shape.rank in (0, 1):
        return tf.TensorSpec(shape, tensor.dtype)
    return tf.TensorSpec([None] * (shape.rank - 1) + [shape[-1]], tensor.dtype)


class View(typing.NamedTuple):
    """The L-Net's outputs for a batch of images of one canonical size (a tf.nest structure)."""

    images: tf.Tensor      # [B, h, w, 3] RGB 0..255 at the canonical size
    foreground: tf.Tensor  # [B, h, w, 1] agnostic foreground probability
    cams: tf.Tensor        # [B, h', w', K] at the encoder stride
    logits: tf.Tensor      # [B, K] multi-label classifier logits
    features: tf.Tensor    # [B, h', w', C]


class LabelTransfer:
    """Pseudo-labels for images with image-level labels, from a trained L-Net.

    Args:
        lnet: a trained L-Net (``build_lnet``).
        num_classes: K + 1.
        params: the ``DiffusionParams`` used by ``__call__``.
        image_size: the L-Net's canonical input size (long side, pixels).
        grid: cells along the long side of the diffusion grid.
        feature_dims: principal components of the L-Net features in the affinity.
        scales: input scales (of the canonical size) whose agnostic maps, CAMs and
            classifier logits are averaged; the affinity features come from scale 1.
        flip: also average over the horizontally flipped image.

    Example:
        >>> transfer = LabelTransfer(lnet, 21, DiffusionParams(), image_size=321, grid=64)
        >>> label = transfer(image, multi_hot({8}, 21))   # uint8 [H, W], 255 void
    """

    def __init__(self, lnet, num_classes, params, image_size, grid, feature_dims=8,
                 scales=(1.0,), flip=False):
        self.lnet = lnet
        self.scales = tuple(scales)
        self.flip = flip
        self.num_classes = num_classes
        self.params = params
        self.image_size = image_size
        self.grid = grid
        self.feature_dims = feature_dims
        self.prototypes = None  # set_prototypes
        self._view = tf.function(self._compute_view, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32)])
        self._scores = {}

    @classmethod
    def from_config(cls, lnet, num_classes, diffusion, image_size):
        """A LabelTransfer with a run's label-transfer settings (a ``DiffusionConfig``)."""
        return cls(lnet, num_classes, diffusion.params(), image_size, diffusion.diffusion_grid,
                   diffusion.diffusion_feature_dims, diffusion.transfer_scales,
                   diffusion.transfer_flip)

    def set_prototypes(self, prototypes, valid):
        """Uses class prototypes [K+1, C'] (``class_prototypes``) for class evidence."""
        self.prototypes = (tf.constant(prototypes, tf.float32), tf.constant(valid, tf.bool))

    def _outputs(self, images, flipped=False):
        """(foreground probability, CAMs, logits, features) of one L-Net pass, float32 maps.

        A ``flipped`` pass sees the mirrored images; its maps are mirrored back.
        """
        raw = self.lnet(tf.reverse(images, [2]) if flipped else images, training=False)
        foreground = tf.sigmoid(tf.cast(raw["agnostic"], tf.float32))
        cams = tf.cast(raw["cam"], tf.float32)
        if flipped:
            foreground, cams = tf.reverse(foreground, [2]), tf.reverse(cams, [2])
        return foreground, cams, tf.cast(raw["logits"], tf.float32), raw["features"]

    def _compute_view(self, images):
        foreground, cams, logits, features = self._outputs(images)
        if self.scales != (1.0,) or self.flip:
            foreground, cams, logits = self._augmented(images, foreground, cams, logits)
        return View(images, foreground, cams, logits, features)

    def _augmented(self, images, foreground, cams, logits):
        """Agnostic map, CAMs and logits averaged over ``scales`` and the flip (at scale 1's sizes)."""
        size, cam_size = tf.shape(foreground)[1:3], tf.shape(cams)[1:3]
        totals, count = [0.0, 0.0, 0.0], 0
        for scale in self.scales:
            scaled = images
            if scale != 1.0:
                steps = tf.maximum(tf.round(tf.cast(size, tf.float32) * scale / SIZE_STEP), 1.0)
                scaled = tf.image.resize(images, tf.cast(steps, tf.int32) * SIZE_STEP,
                                         antialias=True)
            for flipped in ((False, True) if self.flip else (False,)):
                if scale == 1.0 and not flipped:
                    outputs = (foreground, cams, logits)  # the pass _compute_view made
                else:
                    outputs = self._outputs(scaled, flipped)
                totals = [totals[0] + tf.image.resize(outputs[0], size),
                          totals[1] + tf.image.resize(outputs[1], cam_size),
                          totals[2] + outputs[2]]
                count += 1
        return tuple(t / count for t in totals)

    def view(self, images):
        """The L-Net's view of images (uint8 or float RGB), each [H, W, 3], all of one canonical size.

        Returns a View of the batch.
        """
        height, width = np.shape(images[0])[:2]
        size = canonical_size(height, width, self.image_size)
        batch = tf.stack([tf.image.resize(np.asarray(i, np.float32), size, method="bilinear",
                                          antialias=True) for i in images])
        return self._view(batch)

    def scores(self, view, labels, params=None):
        """Class scores [B, gh, gw, K+1] on the diffusion grid for a View and labels [B, K]."""
        params = params or self.params
        height, width = view.images.shape[1:3]
        grid = tf.constant(grid_size(height, width, self.grid), tf.int32)
        use_prototypes = self.prototypes is not None and params.prototype_weight > 0
        shape = (params.radius, params.features, params.iterations == 0, use_prototypes,
                 params.presence_on)
        numbers = {name: tf.constant(getattr(params, name), tf.float32)
                   for name in NUMERIC_PARAMS}
        numbers["iterations"] = tf.constant(params.iterations, tf.int32)
        inputs = (view, tf.convert_to_tensor(labels, tf.float32), grid, numbers,
                  self.prototypes if use_prototypes else ())
        if shape not in self._scores:  # one graph per window size, guide and evidence
            def run(v, y, g, numbers, prototypes):
                traced = dataclasses.replace(params, **numbers)
                if shape[2]:
                    traced = dataclasses.replace(traced, iterations=0)
                return transfer_scores(v.images, v.foreground, v.cams, y, v.features, traced, g,
                                       self.feature_dims, *(prototypes or (None, None)))
            # Batch and spatial sizes left open: one trace serves every image size.
            self._scores[shape] = tf.function(run, input_signature=tf.nest.map_structure(
                _open_spec, inputs))
        return self._scores[shape](*inputs)

    @staticmethod
    def labels_from_scores(scores, labels, confidence):
        """uint8 [B, H, W] pseudo-labels (255 void) from scores at their final size."""
        return scores_to_labels(scores, tf.convert_to_tensor(labels, tf.float32),
                                confidence).numpy().astype(np.uint8)

    def labels(self, view, labels, sizes, params=None):
        """Pseudo-labels, one uint8 [H, W] array (255 void) per image, at its (H, W) in ``sizes``."""
        params = params or self.params
        grid_scores = self.scores(view, labels, params)
        return [self.labels_from_scores(tf.image.resize(grid_scores[i:i + 1], size),
                                        labels[i:i + 1], params.confidence)[0]
                for i, size in enumerate(sizes)]

    def __call__(self, image, labels):
        """Pseudo-label uint8 [H, W] (255 void) for one RGB image [H, W, 3] and multi-hot labels [K]."""
        view = self.view([image])
        return self.labels(view, np.asarray(labels, np.float32)[None], [np.shape(image)[:2]])[0]


def load_label_transfer(layout, config, training_set, held_out=(), verbose=False):
    """The LabelTransfer of a run: its trained L-Net at the size it was trained at.

    Class prototypes are computed from the strong pool (except the ``held_out``
    calibration images, which must stay unseen) and the weak pool's
    single-label images.
    """
    lnet = keras.saving.load_model(layout.lnet_model, safe_mode=True)
    sizes = LNetInput.read(layout.lnet_input)
    return label_transfer_for(lnet, sizes.image_size, config, training_set, held_out, verbose)


def label_transfer_for(lnet, image_size, config, training_set, held_out=(), verbose=False):
    """The LabelTransfer of an L-Net trained at ``image_size``, with its class prototypes.

    As ``load_label_transfer``, for an L-Net in memory (the lnet stage's rounds).
    """
    from tss_keras.transfer.prototypes import class_prototypes

    transfer = LabelTransfer.from_config(lnet, training_set.num_classes, config.diffusion,
                                         image_size)
    strong = [r for r in training_set.records if r.mask_path is not None
              and r.image_id in {e.image_id for e in training_set.pools.strong}
              and r.image_id not in set(held_out)]
    transfer.set_prototypes(*class_prototypes(transfer, strong, training_set.pools.weak,
                                              training_set.num_classes, verbose))
    return transfer
