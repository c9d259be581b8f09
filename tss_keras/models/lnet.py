"""The L-Net: class-agnostic foreground map + class activation maps (docs/method.md)."""

import keras

from tss_keras.models.layers import ConvHead, ResizeLike


def build_lnet(encoder, num_classes, head_channels=128, sync_bn=False, name="lnet"):
    """Builds the L-Net functional model on a shared encoder.

    The class-agnostic head gives one foreground logit per pixel, trained on
    strong-pool masks with all foreground classes merged. The classification
    head is a 1x1 conv score map per foreground class (the CAM); its global
    average is the image's multi-label logit *(choice: CAM = classifier map,
    so CAMs need no extra pass)*.

    Args:
        encoder: a model from ``build_encoder``.
        num_classes: classes including background (K + 1).
        head_channels: hidden channels of the agnostic head.
        sync_bn: synchronised batch norm in the agnostic head (the encoder
            takes its own ``sync_bn``).

    Returns:
        A model: image [B, H, W, 3] RGB 0..255 -> dict with ``agnostic``
        (logits [B, H, W, 1] at input size), ``cam`` ([B, h, w, K] at the
        encoder stride), ``logits`` ([B, K]) and ``features`` ([B, h, w, C]).

    Example:
        >>> lnet = build_lnet(build_encoder("tiny", 8), num_classes=7)
    """
    image = keras.Input((None, None, 3), name="image")
    features = encoder(image)
    agnostic = ConvHead(1, hidden=head_channels, sync_bn=sync_bn, name="agnostic_head")(features)
    agnostic = ResizeLike(name="agnostic_resize")([agnostic, image])
    cam = ConvHead(num_classes - 1, hidden=0, name="cam_head")(features)
    logits = keras.layers.GlobalAveragePooling2D(name="cam_pool")(cam)
    return keras.Model(image, {"agnostic": agnostic, "cam": cam, "logits": logits,
                               "features": features}, name=name)
