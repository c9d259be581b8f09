"""The SavedModel served by TF Serving: ``serving_default`` on image bytes, ``predict_images``."""

import json

import keras
import tensorflow as tf

from tss_keras.constants import VOID_LABEL


def _decode(image_bytes):
    return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


def make_serving_functions(pnet, num_classes):
    """Returns (serve_bytes, predict_images) functions around a P-Net.

    ``serve_bytes(image_bytes)``: a batch of JPEG/PNG bytes of any sizes ->
    ``classes`` int32 [B, Hmax, Wmax] (255 outside each image),
    ``probabilities`` float32 [B, Hmax, Wmax, K+1] (0 outside), ``heights``
    and ``widths`` int32 [B]. Each image goes through the P-Net on its own, at
    its own size, so its mask does not depend on the other images of the
    request (TF Serving batches requests; padding them together would change
    the P-Net's image pooling). Undecodable bytes raise InvalidArgument.
    ``predict_images(images)``: float32 RGB 0..255 [B, H, W, 3] -> ``logits``
    and ``classes``.
    """

    def serve_bytes(image_bytes):
        sizes = tf.map_fn(lambda data: tf.shape(_decode(data))[:2], image_bytes,
                          fn_output_signature=tf.TensorSpec([2], tf.int32))
        height = tf.reduce_max(tf.concat([sizes[:, 0], [0]], axis=0))
        width = tf.reduce_max(tf.concat([sizes[:, 1], [0]], axis=0))

        def one(data):
            image = tf.cast(_decode(data), tf.float32)
            probabilities = tf.nn.softmax(pnet(image[None], training=False)[0], axis=-1)
            classes = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            pads = [[0, height - tf.shape(image)[0]], [0, width - tf.shape(image)[1]]]
            return (tf.pad(classes - VOID_LABEL, pads) + VOID_LABEL,
                    tf.pad(probabilities, pads + [[0, 0]]))

        def predict():
            return tf.map_fn(one, image_bytes, fn_output_signature=(
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([None, None, num_classes], tf.float32)))

        def empty():
            return tf.zeros([0, 0, 0], tf.int32), tf.zeros([0, 0, 0, num_classes], tf.float32)

        classes, probabilities = tf.cond(tf.size(image_bytes) > 0, predict, empty)
        return {"classes": classes, "probabilities": probabilities,
                "heights": sizes[:, 0], "widths": sizes[:, 1]}

    def predict_images(images):
        logits = pnet(images, training=False)
        return {"logits": logits, "classes": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    return serve_bytes, predict_images


def write_saved_model(pnet, num_classes, path, class_names=None):
    """Writes a SavedModel with the two signatures (method tensorflow/serving/predict).

    ``class_names`` go to ``assets.extra/class_names.txt`` and the exporting
    TensorFlow and Keras versions to ``assets.extra/exported_with.json`` (TF
    Serving ignores that folder; the server must be at least as new as the
    exporting TensorFlow, since exports use recent ops).
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
    extra = tf.io.gfile.join(path, "assets.extra")
    tf.io.gfile.makedirs(extra)
    if class_names:
        with tf.io.gfile.GFile(tf.io.gfile.join(extra, "class_names.txt"), "w") as f:
            f.write("\n".join(class_names) + "\n")
    with tf.io.gfile.GFile(tf.io.gfile.join(extra, "exported_with.json"), "w") as f:
        f.write(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__}) + "\n")
    return path
