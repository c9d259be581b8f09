"""Runs L-Net + self-diffusion over the weak pool and writes pseudo-label PNGs."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tss_keras.data.palette import atomic_write, colorize, save_palette_png
from tss_keras.data.pipeline import multi_hot
from tss_keras.data.voc import read_image
from tss_keras.errors import UsageError
from tss_keras.transfer.diffusion import scores_to_labels, transfer_scores


class LabelTransfer:
    """L-Net inference + diffusion as one traced function per image size class.

    Args:
        lnet: a trained L-Net (``build_lnet``).
        num_classes: K + 1.
        diffusion: a ``DiffusionConfig``.
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
        scores = transfer_scores(images, tf.sigmoid(outputs["agnostic"]), outputs["cam"], labels,
                                 outputs["features"], radius=d.radius, iterations=d.iterations,
                                 color_scale=d.color_scale, feature_scale=d.feature_scale,
                                 feature_source=d.feature_source,
                                 working_stride=d.working_stride, cam_power=d.cam_power,
                                 cam_weight=d.cam_weight)
        return scores_to_labels(scores, labels, d.confidence)

    def __call__(self, images, labels):
        """Pseudo-labels [B, H, W] uint8 for float images [B, H, W, 3] and multi-hot labels."""
        return self._run(tf.convert_to_tensor(images, tf.float32),
                         tf.convert_to_tensor(labels, tf.float32)).numpy().astype(np.uint8)


def pseudo_label_dir(model_dir):
    return os.path.join(model_dir, "pseudo_labels")


def generate_pseudo_labels(lnet, examples, model_dir, class_names, diffusion, verbose=1,
                           log_images=4):
    """Writes ``<model_dir>/pseudo_labels/<id>.png`` for each weak example.

    Files are palette PNGs at the image's own size with 255 void, written
    atomically; finished files are skipped, so a re-run after a crash
    continues. Writes ``pseudo_labels.json`` (counts, void fraction, pixel
    share per class, the diffusion settings) and returns it as a dict. The
    first ``log_images`` written go to TensorBoard (``<model_dir>/logs/transfer``)
    as image / pseudo-label pairs.
    """
    if not examples:
        raise UsageError("--strong_classes: the weak pool is empty; nothing to transfer")
    out_dir = pseudo_label_dir(model_dir)
    os.makedirs(out_dir, exist_ok=True)
    num_classes = len(class_names)
    transfer = LabelTransfer(lnet, num_classes, diffusion)
    counts = np.zeros(256, np.int64)
    written = skipped = 0
    progress = keras.utils.Progbar(len(examples), verbose=verbose, unit_name="image")
    writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "transfer"))
    for i, example in enumerate(examples):
        path = os.path.join(out_dir, example.image_id + ".png")
        if os.path.isfile(path):
            skipped += 1
        else:
            image = read_image(example.image_path).astype(np.float32)[None]
            labels = multi_hot(example.labels, num_classes)[None]
            label = transfer(image, labels)[0]
            save_palette_png(path, label)
            if written < log_images:
                with writer.as_default():
                    pair = np.concatenate([image[0].astype(np.uint8), colorize(label)], axis=1)
                    tf.summary.image(f"transfer/{example.image_id}", pair[None], step=0)
            counts += np.bincount(label.reshape(-1), minlength=256)
            written += 1
        progress.update(i + 1)
    writer.close()
    labelled = counts.sum()
    summary = {
        "num_images": len(examples), "written": written, "skipped_existing": skipped,
        "void_fraction": float(counts[255] / labelled) if labelled else None,
        "class_pixel_fraction": {n: float(counts[i] / labelled) if labelled else None
                                 for i, n in enumerate(class_names)},
        "diffusion": vars(diffusion),
    }
    atomic_write(os.path.join(model_dir, "pseudo_labels.json"),
                 lambda tmp: open(tmp, "w").write(json.dumps(summary, indent=2)))
    return summary
