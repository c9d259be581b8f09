"""One interface over the three artifact kinds: SavedModel dir, .keras file, .tflite file."""

import os

import keras
import numpy as np
import tensorflow as tf

from tss_keras.errors import DataError
from tss_keras.exporting.tflite import TFLiteRunner


class Predictor:
    """Predicts per-pixel classes [H, W] (uint8) for an image file, at the image's size.

    Args:
        path: a SavedModel version folder (has ``saved_model.pb``), a ``.keras``
            file (a P-Net) or a ``.tflite`` file.
    """

    def __init__(self, path):
        self.path = path
        if not os.path.exists(path):
            raise DataError(f"{path}: --model does not exist")
        if os.path.isdir(path):
            if not os.path.isfile(os.path.join(path, "saved_model.pb")):
                raise DataError(f"{path}: --model is a folder without saved_model.pb")
            self.kind = "saved_model"
            self._signature = tf.saved_model.load(path).signatures["serving_default"]
        elif path.endswith(".keras"):
            self.kind = "keras"
            self._model = keras.saving.load_model(path, safe_mode=True)
        elif path.endswith(".tflite"):
            self.kind = "tflite"
            self._runner = TFLiteRunner(path)
        else:
            raise DataError(f"{path}: --model must be a SavedModel folder, a .keras or a .tflite file")

    @property
    def note(self):
        """What a user should know about how this model sees images (None if nothing)."""
        if self.kind == "tflite":
            height, width = self._runner.input_size
            return (f"{os.path.basename(self.path)} takes a fixed {height}x{width} input: each "
                    f"image is resized to the model's {height}x{width} input and its mask back "
                    f"to the image's size")
        return None

    def classes(self, image_path):
        """Returns (image uint8 [H, W, 3], classes uint8 [H, W])."""
        data = tf.io.read_file(image_path)
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise DataError(f"{image_path}: not a readable image") from None
        height, width = int(image.shape[0]), int(image.shape[1])
        if self.kind == "saved_model":
            out = self._signature(image_bytes=tf.reshape(data, [1]))
            classes = out["classes"].numpy()[0, :height, :width]
        elif self.kind == "keras":
            logits = self._model(tf.cast(image, tf.float32)[None], training=False)
            classes = tf.argmax(logits[0], axis=-1).numpy()
        else:
            resized = tf.image.resize(tf.cast(image, tf.float32), self._runner.input_size)
            logits = self._runner.logits(resized.numpy())
            logits = tf.image.resize(logits[None], (height, width))[0]
            classes = tf.argmax(logits, axis=-1).numpy()
        return image.numpy(), classes.astype(np.uint8)
