"""Keras models: the shared encoder, the L-Net, the P-Net and the discriminator."""

from tss_keras.models.discriminator import build_discriminator
from tss_keras.models.encoder import BACKBONES, build_encoder, encoder_of
from tss_keras.models.lnet import build_lnet
from tss_keras.models.pnet import build_pnet

__all__ = ["BACKBONES", "build_discriminator", "build_encoder", "build_lnet", "build_pnet",
           "encoder_of"]
