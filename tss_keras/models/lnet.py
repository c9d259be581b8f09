"""The L-Net: class-agnostic foreground map + class activation maps (docs/method.md)."""

import keras

from tss_keras.models.layers import ASPP, ConvHead, LogSumExpPooling, ResizeLike

CAM_POOLINGS = ("avg", "lse")
LSE_SHARPNESS = 5.0


def build_lnet(encoder, num_classes, head_channels=128, sync_bn=False, cam_pooling="avg",
               head_rates=(), name="lnet"):
    """Builds the L-Net functional model on a shared encoder.

    The class-agnostic head gives one foreground logit per pixel, trained on
    strong-pool masks with all foreground classes merged. The classification
    head is a 1x1 conv score map per foreground class (the CAM); its global
    average (or, with ``cam_pooling="lse"``, its log-sum-exp pooling, which
    lets a class score from a small region) is the image's multi-label logit
    *(choice: CAM = classifier map, so CAMs need no extra pass)*.

    Args:
        encoder: a model from ``build_encoder``.
        num_classes: classes including background (K + 1).
        head_channels: hidden channels of the agnostic head.
        sync_bn: synchronised batch norm in the agnostic head (the encoder
            takes its own ``sync_bn``).
        cam_pooling: ``"avg"`` or ``"lse"`` (sharpness ``LSE_SHARPNESS``): how
            the CAMs pool to the image's logits.
        head_rates: empty: the agnostic head is one 3x3 conv-BN-ReLU and a 1x1
            conv. Given dilation rates, it is an ASPP (those rates and image
            pooling, ``head_channels`` wide) and a 1x1 conv *(choice)*: whether
            a region is an object depends on its surround, which a small
            encoder's own receptive field may not reach.

    Returns:
        A model: image [B, H, W, 3] RGB 0..255 -> dict with ``agnostic``
        (logits [B, H, W, 1] at input size), ``cam`` ([B, h, w, K] at the
        encoder stride), ``logits`` ([B, K]) and ``features`` ([B, h, w, C]).

    Example:
        >>> lnet = build_lnet(build_encoder("tiny", 8), num_classes=7)
    """
    if cam_pooling not in CAM_POOLINGS:
        raise ValueError(f"--lnet_cam_pooling: {cam_pooling!r} is not one of {CAM_POOLINGS}")
    image = keras.Input((None, None, 3), name="image")
    features = encoder(image)
    if head_rates:
        context = ASPP(head_channels, tuple(head_rates), dropout=0.0, sync_bn=sync_bn,
                       name="agnostic_context")(features)
        agnostic = ConvHead(1, hidden=0, name="agnostic_head")(context)
    else:
        agnostic = ConvHead(1, hidden=head_channels, sync_bn=sync_bn,
                            name="agnostic_head")(features)
    agnostic = ResizeLike(name="agnostic_resize")([agnostic, image])
    cam = ConvHead(num_classes - 1, hidden=0, name="cam_head")(features)
    if cam_pooling == "lse":
        logits = LogSumExpPooling(LSE_SHARPNESS, name="cam_pool")(cam)
    else:
        logits = keras.layers.GlobalAveragePooling2D(name="cam_pool")(cam)
    return keras.Model(image, {"agnostic": agnostic, "cam": cam, "logits": logits,
                               "features": features}, name=name)
