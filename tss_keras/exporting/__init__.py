"""Exporters: SavedModel for TF Serving, TFLite, .keras files, parity checks."""
