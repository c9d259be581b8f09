"""Serializable layers shared by the models: preprocessing, resizing, heads."""

import keras
import tensorflow as tf

from tss_keras.constants import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

_PACKAGE = "tss_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Preprocess(keras.layers.Layer):
    """Maps RGB 0..255 images to what a backbone expects.

    Args:
        mode: ``"caffe"`` (BGR, ImageNet mean subtracted: VGG, ResNet),
            ``"tf"`` (scaled to -1..1: MobileNetV2) or ``"torch"`` (mean/std).
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, images):
        images = tf.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        mean = tf.constant(IMAGENET_MEAN_RGB, self.compute_dtype)
        if self.mode == "caffe":
            return tf.reverse(images - mean, axis=[-1])
        return (images - mean) / tf.constant(IMAGENET_STD_RGB, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of ``inputs[0]`` to the spatial size of ``inputs[1]``.

    Works with sizes known only at run time (``keras.ops.image.resize`` does
    not while tracing for export).
    """

    def __init__(self, method="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.method = method

    def call(self, inputs):
        source, reference = inputs
        size = tf.shape(reference)[1:3]
        resized = tf.image.resize(source, size, method=self.method)
        return tf.cast(resized, source.dtype)

    def compute_output_shape(self, input_shapes):
        source, reference = input_shapes
        return (source[0], reference[1], reference[2], source[3])

    def get_config(self):
        return {**super().get_config(), "method": self.method}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogSumExpPooling(keras.layers.Layer):
    """Global log-sum-exp pooling of maps [B, h, w, C] to [B, C].

    ``(1 / r) log(mean(exp(r x)))`` over the positions: the mean for r -> 0,
    the max for r -> infinity (Pinheiro & Collobert, CVPR 2015). A class map
    needs to be high only where its class is, rather than everywhere as
    under average pooling, so a small object can still score.

    Args:
        sharpness: r.
    """

    def __init__(self, sharpness=5.0, **kwargs):
        super().__init__(**kwargs)
        self.sharpness = sharpness

    def call(self, maps):
        values = tf.cast(maps, tf.float32) * self.sharpness
        positions = tf.cast(tf.shape(maps)[1] * tf.shape(maps)[2], tf.float32)
        pooled = (tf.reduce_logsumexp(values, axis=[1, 2]) - tf.math.log(positions))
        return tf.cast(pooled / self.sharpness, maps.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "sharpness": self.sharpness}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ASPP(keras.layers.Layer):
    """Atrous spatial pyramid pooling (DeepLab v3) with image pooling.

    Args:
        filters: channels of each branch and of the output.
        rates: dilation rates of the 3x3 branches.
        dropout: dropout rate after the projection.
        sync_bn: synchronise batch-norm statistics across replicas.
    """

    def __init__(self, filters=256, rates=(6, 12, 18), dropout=0.1, sync_bn=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.rates = tuple(rates)
        self.dropout = dropout
        self.sync_bn = sync_bn
        self.branches = [self._conv_bn(1, 1, "b0")] + [
            self._conv_bn(3, rate, f"b{i + 1}") for i, rate in enumerate(self.rates)]
        self.pool_conv = self._conv_bn(1, 1, "pool")
        self.project = self._conv_bn(1, 1, "project")
        self.drop = keras.layers.Dropout(dropout)

    def _conv_bn(self, kernel, rate, name):
        return keras.Sequential([
            keras.layers.Conv2D(self.filters, kernel, padding="same", dilation_rate=rate,
                                use_bias=False, name=f"{name}_conv"),
            keras.layers.BatchNormalization(synchronized=self.sync_bn, name=f"{name}_bn"),
            keras.layers.ReLU(name=f"{name}_relu"),
        ], name=name)

    def build(self, input_shape):
        for branch in self.branches + [self.pool_conv]:
            branch.build(input_shape)
        self.project.build(tuple(input_shape[:-1]) + (self.filters * (len(self.branches) + 1),))
        super().build(input_shape)

    def call(self, features, training=None):
        outputs = [branch(features, training=training) for branch in self.branches]
        pooled = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
        pooled = self.pool_conv(pooled, training=training)
        outputs.append(tf.broadcast_to(pooled, tf.concat(
            [tf.shape(features)[:3], [self.filters]], axis=0)))
        merged = self.project(tf.concat(outputs, axis=-1), training=training)
        return self.drop(merged, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "rates": list(self.rates),
                "dropout": self.dropout, "sync_bn": self.sync_bn}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvHead(keras.layers.Layer):
    """Optional 3x3 conv-BN-ReLU, then a 1x1 conv to ``outputs`` channels.

    Args:
        outputs: output channels (logits).
        hidden: channels of the 3x3 layer; 0 gives a plain 1x1 head.
        use_bias: bias on the final 1x1 conv.
        sync_bn: synchronise batch-norm statistics across replicas.
    """

    def __init__(self, outputs, hidden=0, use_bias=True, sync_bn=False, **kwargs):
        super().__init__(**kwargs)
        self.outputs = outputs
        self.hidden = hidden
        self.use_bias = use_bias
        self.sync_bn = sync_bn
        self.hidden_layers = []
        if hidden:
            self.hidden_layers = [
                keras.layers.Conv2D(hidden, 3, padding="same", use_bias=False, name="hidden_conv"),
                keras.layers.BatchNormalization(synchronized=sync_bn, name="hidden_bn"),
                keras.layers.ReLU(name="hidden_relu"),
            ]
        self.classifier = keras.layers.Conv2D(outputs, 1, use_bias=use_bias, name="logits")

    def build(self, input_shape):
        shape = input_shape
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.classifier.build(shape)
        super().build(input_shape)

    def call(self, features, training=None):
        x = features
        for layer in self.hidden_layers:
            x = layer(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.outputs,)

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs, "hidden": self.hidden,
                "use_bias": self.use_bias, "sync_bn": self.sync_bn}
