"""The SavedModel served by TF Serving: ``serving_default`` on image bytes, ``predict_images``."""

import keras
import tensorflow as tf

from tss_keras.constants import IMAGENET_MEAN_RGB, VOID_LABEL


def _decode(image_bytes):
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return tf.RaggedTensor.from_tensor(image, ragged_rank=1), tf.shape(image)[:2]


def make_serving_functions(pnet, num_classes):
    """Returns (serve_bytes, predict_images) functions around a P-Net.

    ``serve_bytes(image_bytes)``: a batch of JPEG/PNG bytes of any sizes ->
    ``classes`` int32 [B, Hmax, Wmax] (255 outside each image), ``probabilities``
    float32 [B, Hmax, Wmax, K+1], ``heights`` and ``widths`` int32 [B]. Images
    are padded with the mean colour to the largest in the batch; undecodable
    bytes raise InvalidArgument. ``predict_images(images)``: float32 RGB 0..255
    [B, H, W, 3] -> ``logits`` and ``classes``.
    """
    mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)

    def run(images, sizes):
        probabilities = tf.nn.softmax(pnet(images, training=False), axis=-1)
        shape = tf.shape(images)
        rows = tf.range(shape[1])[None, :, None] < sizes[:, 0, None, None]
        cols = tf.range(shape[2])[None, None, :] < sizes[:, 1, None, None]
        inside = rows & cols
        classes = tf.where(inside, tf.argmax(probabilities, axis=-1, output_type=tf.int32), VOID_LABEL)
        return classes, probabilities * tf.cast(inside, tf.float32)[..., None]

    def serve_bytes(image_bytes):
        ragged, sizes = tf.map_fn(_decode, image_bytes, fn_output_signature=(
            tf.RaggedTensorSpec([None, None, 3], tf.uint8, ragged_rank=1),
            tf.TensorSpec([2], tf.int32)))
        batch = tf.shape(image_bytes)[0]

        def predict():
            images = tf.cast(ragged.to_tensor(), tf.float32)
            valid = ragged.with_values(tf.ones_like(ragged.values[..., :1])).to_tensor() > 0
            return run(tf.where(valid, images, mean), sizes)

        def empty():
            return (tf.zeros([0, 0, 0], tf.int32), tf.zeros([0, 0, 0, num_classes], tf.float32))

        classes, probabilities = tf.cond(batch > 0, predict, empty)
        return {"classes": classes, "probabilities": probabilities,
                "heights": sizes[:, 0], "widths": sizes[:, 1]}

    def predict_images(images):
        logits = pnet(images, training=False)
        return {"logits": logits, "classes": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return serve_bytes, predict_images


def write_saved_model(pnet, num_classes, path, class_names=None):
    """Writes a SavedModel with the two signatures (method tensorflow/serving/predict).

    ``class_names`` go to ``assets.extra/class_names.txt`` (TF Serving ignores
    that folder; clients can read the class list there).
    """
    serve_bytes, predict_images = make_serving_functions(pnet, num_classes)
    archive = keras.export.ExportArchive()
    archive.track(pnet)
    archive.add_endpoint("serving_default", serve_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("predict_images", predict_images,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                        name="images")])
    archive.write_out(path, verbose=False)
    if class_names:
        extra = tf.io.gfile.join(path, "assets.extra")
        tf.io.gfile.makedirs(extra)
        with tf.io.gfile.GFile(tf.io.gfile.join(extra, "class_names.txt"), "w") as f:
            f.write("\n".join(class_names) + "\n")
    return path
