"""Parity of exported artifacts with the Keras model: argmax agreement and logit differences."""

import numpy as np
import tensorflow as tf


def compare(reference_logits, logits):
    """(argmax agreement in [0, 1], max absolute logit difference) of two [..., C] arrays."""
    reference_logits, logits = np.asarray(reference_logits), np.asarray(logits)
    agreement = float(np.mean(reference_logits.argmax(-1) == logits.argmax(-1)))
    return agreement, float(np.max(np.abs(reference_logits - logits)))


def resize_image(image, size):
    """Bilinear resize of an RGB image [H, W, 3] to (height, width), float32 0..255."""
    return tf.image.resize(tf.cast(image, tf.float32), size).numpy()


class ParityReport:
    """Collects per-artifact agreement and checks them against thresholds.

    Args:
        thresholds: {artifact name: minimum argmax agreement}.
    """

    def __init__(self, thresholds):
        self.thresholds = dict(thresholds)
        self.pixels = {}
        self.agreeing = {}
        self.max_diff = {}

    def add(self, artifact, reference_logits, logits, float_artifact=True):
        agreement, diff = compare(reference_logits, logits)
        pixels = int(np.prod(np.shape(reference_logits)[:-1]))
        self.pixels[artifact] = self.pixels.get(artifact, 0) + pixels
        self.agreeing[artifact] = self.agreeing.get(artifact, 0) + agreement * pixels
        if float_artifact:
            self.max_diff[artifact] = max(self.max_diff.get(artifact, 0.0), diff)

    def add_classes(self, artifact, reference_logits, classes):
        """Agreement of predicted classes (no logits, e.g. serving_default)."""
        reference = np.asarray(reference_logits).argmax(-1)
        pixels = reference.size
        self.pixels[artifact] = self.pixels.get(artifact, 0) + pixels
        self.agreeing[artifact] = self.agreeing.get(artifact, 0) + float(
            np.sum(reference == np.asarray(classes)))

    def as_dict(self, num_images):
        artifacts = {}
        for name in self.pixels:
            agreement = self.agreeing[name] / self.pixels[name]
            threshold = self.thresholds.get(name)
            artifacts[name] = {
                "argmax_agreement": agreement,
                "max_abs_logit_diff": self.max_diff.get(name),
                "threshold": threshold,
                "passed": threshold is None or agreement >= threshold,
            }
        return {"num_images": num_images, "artifacts": artifacts,
                "passed": all(a["passed"] for a in artifacts.values())}
