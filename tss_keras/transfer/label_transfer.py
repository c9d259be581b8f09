"""LabelTransfer: L-Net inference + self-diffusion, from an image and its labels to a pseudo-label."""

import numpy as np
import tensorflow as tf

from tss_keras.transfer.diffusion import scores_to_labels, transfer_scores


class LabelTransfer:
    """Pseudo-labels for images with image-level labels, from a trained L-Net.

    Args:
        lnet: a trained L-Net (``build_lnet``).
        num_classes: K + 1.
        diffusion: a ``DiffusionConfig``.

    Example:
        >>> transfer = LabelTransfer(lnet, num_classes=21, diffusion=DiffusionConfig())
        >>> label = transfer(image, multi_hot({8}, 21))   # uint8 [H, W], 255 void
    """

    def __init__(self, lnet, num_classes, diffusion):
        self.lnet = lnet
        self.num_classes = num_classes
        self.diffusion = diffusion
        self._run = tf.function(self._label, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32),
            tf.TensorSpec([None, num_classes - 1], tf.float32)], reduce_retracing=True)

    def _label(self, images, labels):
        outputs = self.lnet(images, training=False)
        d = self.diffusion
        scores = transfer_scores(
            images, tf.sigmoid(tf.cast(outputs["agnostic"], tf.float32)), outputs["cam"], labels,
            outputs["features"], radius=d.diffusion_radius, iterations=d.diffusion_iterations,
            color_scale=d.diffusion_color_scale, feature_scale=d.diffusion_feature_scale,
            feature_source=d.diffusion_features, working_stride=d.diffusion_stride,
            cam_power=d.diffusion_cam_power, cam_weight=d.diffusion_cam_weight)
        return scores_to_labels(scores, labels, d.diffusion_confidence)

    def __call__(self, image, labels):
        """Pseudo-label uint8 [H, W] (255 void) for an RGB image [H, W, 3] and multi-hot labels [K]."""
        images = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
        labels = tf.convert_to_tensor(np.asarray(labels, np.float32)[None])
        return self._run(images, labels).numpy()[0].astype(np.uint8)
