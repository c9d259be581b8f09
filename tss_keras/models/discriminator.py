"""The fully convolutional discriminator of the adversarial refinement (docs/method.md)."""

import keras

from tss_keras.models.layers import Preprocess


def build_discriminator(num_classes, base_filters=64, with_image=False, name="discriminator",
                        image_channels=3):
    """Per-location real/fake logits for a class-probability map.

    4x4 stride-2 convolutions with ``base_filters`` x (1, 2, 4, 8) channels
    and LeakyReLU 0.2, then a 4x4 stride-2 conv to one logit per location
    (after Luc et al. 2016 and AdvSemiSeg).

    Args:
        num_classes: K + 1 channels of the probability map.
        base_filters: channels of the first layer.
        with_image: if True, the model takes ``[probabilities, image]`` and
            sees the image (RGB 0..255, scaled to -1..1) beside the map.
        image_channels: the image input's channels (3, or 3 * f**2 when maps and
            image are folded by ``adversarial.downsample(.., f, "fold")``).

    Returns:
        A model: probabilities [B, H, W, K+1] (and image) -> logits [B, h, w, 1].
    """
    probabilities = keras.Input((None, None, num_classes), name="probabilities")
    inputs, x = [probabilities], probabilities
    if with_image:
        image = keras.Input((None, None, image_channels), name="image")
        inputs.append(image)
        x = keras.layers.Concatenate(name="with_image")([x, Preprocess("tf", name="scale")(image)])
    for i, multiple in enumerate((1, 2, 4, 8)):
        x = keras.layers.Conv2D(base_filters * multiple, 4, strides=2, padding="same",
                                name=f"conv{i + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i + 1}")(x)
    logits = keras.layers.Conv2D(1, 4, strides=2, padding="same", name="logits")(x)
    return keras.Model(inputs if with_image else probabilities, logits, name=name)
