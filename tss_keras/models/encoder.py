"""The shared encoder: keras.applications backbones at output stride 8 or 16.

keras.applications takes no output-stride argument, so the backbone is cloned
with late-stage strides set to 1 and dilations 2/4, and its weights copied over
unchanged. Every encoder takes RGB 0..255 at any H, W and
returns features at ``output_stride``.
"""

import os
import warnings

import keras

from tss_keras.errors import UsageError
from tss_keras.models.layers import Preprocess

BACKBONES = ("vgg16", "resnet50", "resnet101", "mobilenetv2", "tiny")
OUTPUT_STRIDES = (8, 16)


def _check(backbone, output_stride):
    if backbone not in BACKBONES:
        raise UsageError(f"--backbone: unknown backbone {backbone!r} (choose from {', '.join(BACKBONES)})")
    if output_stride not in OUTPUT_STRIDES:
        raise UsageError(f"--output_stride: {output_stride} is not supported (choose 8 or 16)")


# Per backbone: (keras.applications constructor, preprocessing, feature layer,
# {layer name prefix: (stride, dilation)} for OS 16 and OS 8). A layer whose
# name matches a prefix gets that stride (if it has strides) and dilation.
def _vgg_rules(os_):
    if os_ == 16:
        return {"block5_pool": (1, 1)}
    return {"block4_pool": (1, 1), "block5_conv": (1, 2), "block5_pool": (1, 1)}


def _resnet_rules(os_):
    rules = {"conv5_block1_1_conv": (1, 1), "conv5_block1_0_conv": (1, 1),
             "conv5_block": (None, 2 if os_ == 16 else 4)}
    if os_ == 8:
        rules.update({"conv4_block1_1_conv": (1, 1), "conv4_block1_0_conv": (1, 1),
                      "conv4_block": (None, 2)})
    return rules


def _mobilenet_rules(os_):
    # block_13 (and at OS 8 block_6) downsamples; its ZeroPadding2D grows to
    # the dilation so the 'valid' 3x3 depthwise conv keeps the size.
    late = 2 if os_ == 16 else 4
    rules = {"block_13_pad": ("pad", late), "block_13_depthwise": (1, late)}
    rules.update({f"block_{b}_depthwise": (None, late) for b in (14, 15, 16)})
    if os_ == 8:
        rules.update({"block_6_pad": ("pad", 2), "block_6_depthwise": (1, 2)})
        rules.update({f"block_{b}_depthwise": (None, 2) for b in range(7, 13)})
    return rules


_SPECS = {
    "vgg16": (keras.applications.VGG16, "caffe", "block5_pool", _vgg_rules),
    "resnet50": (keras.applications.ResNet50, "caffe", "conv5_block3_out", _resnet_rules),
    "resnet101": (keras.applications.ResNet101, "caffe", "conv5_block3_out", _resnet_rules),
    "mobilenetv2": (keras.applications.MobileNetV2, "tf", "block_16_project_BN", _mobilenet_rules),
}


def _rule_for(name, rules):
    best = None
    for prefix, rule in rules.items():
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rule)
    return best[1] if best else None


def _dilate(layer, rules, sync_bn=False):
    """clone_function: re-creates ``layer`` with the stride/dilation rule applied."""
    rule = _rule_for(layer.name, rules)
    config = layer.get_config()
    if sync_bn and isinstance(layer, keras.layers.BatchNormalization):
        config["synchronized"] = True
    if rule is not None:
        stride, dilation = rule
        if stride == "pad":
            config["padding"] = ((dilation, dilation), (dilation, dilation))
        else:
            if stride is not None and "strides" in config:
                config["strides"] = (stride, stride)
            if isinstance(layer, keras.layers.MaxPooling2D):
                if stride == 1:
                    config["pool_size"], config["padding"] = (3, 3), "same"
            elif "dilation_rate" in config:
                config["dilation_rate"] = (dilation, dilation)
    return layer.__class__.from_config(config)


def dilate_backbone(base, backbone, output_stride, sync_bn=False):
    """Returns the feature trunk of a keras.applications model at ``output_stride``.

    The trunk is cut at the backbone's feature layer, cloned with late strides
    set to 1 and dilations raised, and given the original weights unchanged.

    Args:
        base: the keras.applications model (``include_top=False``).
        backbone: its name (``vgg16``, ``resnet50``, ``resnet101``, ``mobilenetv2``).
        output_stride: 8 or 16.
        sync_bn: make every batch-norm layer synchronised across replicas.
    """
    _check(backbone, output_stride)
    feature_layer, rules_for = _SPECS[backbone][2], _SPECS[backbone][3]
    trunk = keras.Model(base.input, base.get_layer(feature_layer).output)
    rules = rules_for(output_stride)
    dilated = keras.models.clone_model(trunk, clone_function=lambda layer: _dilate(layer, rules, sync_bn))
    dilated.set_weights(trunk.get_weights())
    return dilated


# The notop weights file keras.applications downloads for each backbone.
WEIGHTS_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenetv2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
}


def _load_backbone(backbone, weights):
    constructor = _SPECS[backbone][0]
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise UsageError(f"--weights: file {weights} does not exist")
    # A mismatching file makes Keras warn once per layer before it fails; the
    # one line below says all there is to say.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return constructor(include_top=False, weights=weights, input_shape=(None, None, 3))
        except ValueError as e:
            if weights not in (None, "imagenet"):
                first = str(e).strip().splitlines()[0][:200]
                raise UsageError(f"--weights: {weights} does not fit backbone {backbone} "
                                 f"({first})") from None
            raise
        except Exception as e:  # keras' get_file wraps every download failure
            if weights == "imagenet" and "fetch failure" in str(e).lower():
                raise UsageError(
                    f"--weights=imagenet: could not download the {backbone} weights (no network?); "
                    f"download {WEIGHTS_FILES[backbone]} elsewhere and pass "
                    f"--weights=/path/to/{WEIGHTS_FILES[backbone]}") from None
            raise


def _tiny_encoder(output_stride, width=32, sync_bn=False):
    """A small conv net for tests and the CPU demo (5 conv stages)."""
    inputs = keras.Input((None, None, 3), name="image")
    x = Preprocess("torch", name="preprocess")(inputs)
    stages = [(width, 2), (width * 2, 2), (width * 4, 2)]
    stages.append((width * 4, 2 if output_stride == 16 else 1))
    dilation = 1
    for i, (filters, stride) in enumerate(stages):
        if stride == 1:
            dilation *= 2
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                dilation_rate=dilation if stride == 1 else 1,
                                name=f"stage{i}_conv")(x)
        x = keras.layers.BatchNormalization(synchronized=sync_bn, name=f"stage{i}_bn")(x)
        x = keras.layers.ReLU(name=f"stage{i}_relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                dilation_rate=dilation, name=f"stage{i}_conv2")(x)
        x = keras.layers.BatchNormalization(synchronized=sync_bn, name=f"stage{i}_bn2")(x)
        x = keras.layers.ReLU(name=f"stage{i}_relu2")(x)
    return keras.Model(inputs, x, name=f"tiny_os{output_stride}")


def encoder_of(model):
    """The shared encoder nested in an L-Net or P-Net (its only sub-model)."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def build_encoder(backbone="resnet50", output_stride=16, weights=None, sync_bn=False):
    """Builds the shared encoder: RGB 0..255 [B, H, W, 3] -> features at output_stride.

    Args:
        backbone: one of ``vgg16``, ``resnet50``, ``resnet101``,
            ``mobilenetv2``, ``tiny``.
        output_stride: 8 or 16 (late strides become dilations).
        weights: None, ``"imagenet"`` (downloads), or a weights file path
            (the keras.applications ``notop`` file of the backbone, or, for
            ``tiny``, a file saved with ``save_weights``).
        sync_bn: synchronise batch-norm statistics across replicas (exact
            multi-replica training; slower).

    Example:
        >>> encoder = build_encoder("mobilenetv2", 16)
        >>> encoder(np.zeros((1, 64, 64, 3))).shape
        TensorShape([1, 4, 4, 320])
    """
    _check(backbone, output_stride)
    if backbone == "tiny":
        encoder = _tiny_encoder(output_stride, sync_bn=sync_bn)
        if weights == "imagenet":
            raise UsageError("--weights: the tiny backbone has no imagenet weights")
        if weights:
            if not os.path.isfile(weights):
                raise UsageError(f"--weights: file {weights} does not exist")
            try:
                encoder.load_weights(weights)
            except ValueError as e:
                raise UsageError(f"--weights: {weights} does not fit backbone tiny ({e})") from None
        return encoder
    mode = _SPECS[backbone][1]
    dilated = dilate_backbone(_load_backbone(backbone, weights), backbone, output_stride, sync_bn)
    inputs = keras.Input((None, None, 3), name="image")
    features = dilated(Preprocess(mode, name="preprocess")(inputs))
    return keras.Model(inputs, features, name=f"{backbone}_os{output_stride}")
