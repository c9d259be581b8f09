"""TFLite conversion at a fixed input size (float32, fp16, full-integer int8) and a runner."""

import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "fp16", "int8")


def convert(pnet, input_size, quantization="none", representative_images=None):
    """Converts the P-Net to a TFLite flatbuffer (bytes) with builtin ops only.

    Args:
        pnet: the Keras P-Net.
        input_size: (height, width) of the fixed input.
        quantization: ``none`` (float32), ``fp16`` (float16 weights) or
            ``int8`` (full-integer: uint8 image input, int8 ops, float32 logits).
        representative_images: for int8, float32 [H, W, 3] images (RGB 0..255)
            of the training data at ``input_size``, used for calibration.

    Input: float32 (uint8 for int8) [1, H, W, 3] RGB 0..255; output: logits
    [1, H, W, K+1].
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"--tflite_quantization: {quantization!r} is not one of {QUANTIZATIONS}")
    height, width = input_size
    with tempfile.TemporaryDirectory() as directory:
        archive = keras.export.ExportArchive()
        archive.track(pnet)
        archive.add_endpoint("serve", lambda images: pnet(images, training=False),
                             input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32)])
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=["serve"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "int8":
            if not representative_images:
                raise ValueError("int8 quantization needs representative images")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None].astype(np.float32)]
                                                        for image in representative_images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.float32
        return converter.convert()


class TFLiteRunner:
    """Runs a .tflite segmentation model with the LiteRT interpreter.

    Args:
        model: path of a ``.tflite`` file, or its bytes.
        num_threads: interpreter threads.
    """

    def __init__(self, model, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_path=model, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @property
    def input_size(self):
        """(height, width) the model takes."""
        return tuple(int(v) for v in self.input["shape"][1:3])

    def logits(self, image):
        """Logits [H, W, K+1] for one RGB 0..255 image [H, W, 3] at ``input_size``."""
        data = np.asarray(image)[None]
        if self.input["dtype"] == np.uint8:
            data = np.clip(np.round(data), 0, 255).astype(np.uint8)
        else:
            data = data.astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], data)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])[0]
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out
