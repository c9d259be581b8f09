"""The P-Net: shared encoder + ASPP head -> K+1 class logits at the input size."""

import keras

from tss_keras.models.layers import ASPP, ConvHead, ResizeLike


def build_pnet(encoder, num_classes, aspp_filters=256, aspp_rates=(6, 12, 18), dropout=0.1,
               sync_bn=False, name="pnet"):
    """Builds the segmentation network (DeepLab-v3 style head).

    Args:
        encoder: a model from ``build_encoder``.
        num_classes: K + 1 (background included).
        aspp_filters: channels of the ASPP branches.
        aspp_rates: dilation rates of the ASPP 3x3 branches (DeepLab uses
            6, 12, 18 at output stride 16 and twice that at 8).
        dropout: dropout after the ASPP projection.
        sync_bn: synchronised batch norm in the head.

    Returns:
        A model: image [B, H, W, 3] RGB 0..255 -> logits [B, H, W, K+1].

    Example:
        >>> pnet = build_pnet(build_encoder("tiny", 8), num_classes=7)
    """
    image = keras.Input((None, None, 3), name="image")
    features = encoder(image)
    x = ASPP(aspp_filters, aspp_rates, dropout, sync_bn=sync_bn, name="aspp")(features)
    logits = ConvHead(num_classes, name="classifier")(x)
    logits = ResizeLike(name="upsample")([logits, image])
    # float32 output even under mixed precision (losses, export and serving).
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(image, logits, name=name)
