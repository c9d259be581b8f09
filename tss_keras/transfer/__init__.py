"""Label transfer: self-diffusion, pseudo-labels for the weak pool, self-calibration."""

from tss_keras.transfer.calibration import calibrate
from tss_keras.transfer.diffusion import DiffusionParams
from tss_keras.transfer.label_transfer import (LabelTransfer, label_transfer_for,
                                               load_label_transfer)
from tss_keras.transfer.pseudo_labels import generate_pseudo_labels

__all__ = ["DiffusionParams", "LabelTransfer", "calibrate", "generate_pseudo_labels",
           "label_transfer_for", "load_label_transfer"]
