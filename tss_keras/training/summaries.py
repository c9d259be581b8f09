"""TensorBoard image summaries written by the training loop's hooks (on the chief)."""

import numpy as np
import tensorflow as tf

from tss_keras.data.palette import colorize


def first_images(dataset, count=4, stream=None):
    """The first ``count`` images of a batched dataset (``stream`` picks one of a zipped pair)."""
    batch = next(iter(dataset))
    if stream is not None:
        batch = batch[stream]
    return np.asarray(batch["image"][:count])


def lnet_image_hook(lnet, images, log_dir):
    """A hook ``f(step)`` writing image, agnostic map and top CAM of a fixed batch."""
    writer = tf.summary.create_file_writer(log_dir)

    def hook(step):
        outputs = lnet(images, training=False)
        agnostic = tf.sigmoid(tf.cast(outputs["agnostic"], tf.float32))
        cam = tf.nn.relu(tf.cast(outputs["cam"], tf.float32))
        top = tf.argmax(outputs["logits"], axis=-1)
        cam = tf.gather(cam, top, axis=-1, batch_dims=1)[..., None]
        cam = tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2, 3], keepdims=True))
        cam = tf.image.resize(cam, tf.shape(images)[1:3])
        with writer.as_default(step=step):
            tf.summary.image("lnet/image", images / 255.0, max_outputs=4)
            tf.summary.image("lnet/agnostic", agnostic, max_outputs=4)
            tf.summary.image("lnet/top_cam", cam, max_outputs=4)
        writer.flush()
    return hook


def prediction_image_hook(pnet, images, log_dir, tag="pnet/weak_prediction"):
    """A hook ``f(step)`` writing the P-Net's predictions on fixed images beside them."""
    writer = tf.summary.create_file_writer(log_dir)

    def hook(step):
        classes = tf.argmax(pnet(images, training=False), axis=-1).numpy()
        pairs = np.concatenate([images.astype(np.uint8), colorize(classes)], axis=2)
        with writer.as_default(step=step):
            tf.summary.image(tag, pairs, max_outputs=4)
        writer.flush()
    return hook
