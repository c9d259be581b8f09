"""tss_keras: Transferable Semi-supervised Semantic Segmentation (TS3) in Keras 3.

Importing the package registers its Keras layers, so saved ``.keras`` models
load with ``keras.saving.load_model(path, safe_mode=True)``. The public API:

- ``tss_keras.models``: ``build_encoder``, ``build_lnet``, ``build_pnet``, ``build_discriminator``
- ``tss_keras.training``: ``LNetTrainer``, ``TS3Model``, ``TrainingLoop``, ``create_strategy``
- ``tss_keras.transfer``: ``LabelTransfer``, ``generate_pseudo_labels``, ``calibrate``
- ``tss_keras.exporting``: ``export_run``, ``write_saved_model``, TFLite ``convert``
- ``tss_keras.inference``: ``Predictor``, ``segment``
- ``tss_keras.config``: ``RunConfig`` and its sections; ``tss_keras.stages``: ``run_stages``
"""

from tss_keras.models import layers  # noqa: F401  (registers serializable layers)
from tss_keras.models import build_discriminator, build_encoder, build_lnet, build_pnet

__version__ = "0.2.0"
__all__ = ["build_discriminator", "build_encoder", "build_lnet", "build_pnet", "__version__"]
