"""Exporters: SavedModel for TF Serving, TFLite, .keras files, parity checks."""

from tss_keras.exporting.exporter import export_run
from tss_keras.exporting.serving import write_saved_model
from tss_keras.exporting.tflite import TFLiteRunner, convert

__all__ = ["TFLiteRunner", "convert", "export_run", "write_saved_model"]
