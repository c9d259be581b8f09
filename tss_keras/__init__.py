"""tss_keras: Transferable Semi-supervised Semantic Segmentation (TS3) in Keras 3.

Importing the package registers its Keras layers, so saved ``.keras`` models
load with ``keras.saving.load_model(path, safe_mode=True)``.
"""

from tss_keras.models import layers  # noqa: F401  (registers serializable layers)
from tss_keras.models.encoder import build_encoder
from tss_keras.models.lnet import build_lnet

__version__ = "0.1.0"
__all__ = ["build_encoder", "build_lnet", "__version__"]
