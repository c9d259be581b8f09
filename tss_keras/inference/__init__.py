"""Segmenting images with a trained or exported model: Predictor and segment."""

from tss_keras.inference.predictor import Predictor
from tss_keras.inference.segment import list_images, segment

__all__ = ["Predictor", "list_images", "segment"]
