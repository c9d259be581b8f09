"""TensorBoard image summaries of the L-Net on a fixed batch."""

import keras
import numpy as np
import tensorflow as tf


class LNetImages(keras.callbacks.Callback):
    """Writes image, agnostic map and top CAM of a fixed batch at each epoch end.

    Args:
        lnet: the L-Net model.
        images: float32 [N, H, W, 3] RGB 0..255 sample batch.
        log_dir: TensorBoard directory.
    """

    def __init__(self, lnet, images, log_dir):
        super().__init__()
        self.lnet = lnet
        self.images = images
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        outputs = self.lnet(self.images, training=False)
        agnostic = tf.sigmoid(outputs["agnostic"])
        cam = tf.nn.relu(outputs["cam"])
        top = tf.argmax(outputs["logits"], axis=-1)
        cam = tf.gather(cam, top, axis=-1, batch_dims=1)[..., None]
        cam = tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2, 3], keepdims=True))
        cam = tf.image.resize(cam, tf.shape(self.images)[1:3])
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default():
            tf.summary.image("lnet/image", self.images / 255.0, step=step, max_outputs=4)
            tf.summary.image("lnet/agnostic", agnostic, step=step, max_outputs=4)
            tf.summary.image("lnet/top_cam", cam, step=step, max_outputs=4)
        self.writer.flush()


def sample_images(dataset, count=4):
    """The first ``count`` images of a batched dataset's ``image`` field."""
    batch = next(iter(dataset))
    first = batch[0] if isinstance(batch, tuple) else batch
    return np.asarray(first["image"][:count])
