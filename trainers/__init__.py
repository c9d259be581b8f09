"""absl entry points; they parse flags and call the tss_keras library."""
