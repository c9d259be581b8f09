"""Every path under a run's ``--model_dir`` and under an export base, in one place.

::

    <model_dir>/
      run_config.json, flags.txt        the settings of the last trainers.run
      stages.json                       the settings each finished stage was made with
      data_summary.json                 data stage
      lnet/lnet.keras, lnet/lnet_input.json, lnet/checkpoints/, lnet/calibration_ids.txt,
      lnet/summary.json
      lnet/round<R>/checkpoints/, lnet/round<R>/labels/<id>.png
                                        rounds after the first (--lnet_rounds): checkpoints,
                                        and the previous round's weak-image pseudo-labels
      pseudo_labels/<id>.png, pseudo_labels.json
      pnet/pnet.keras, pnet/discriminator.keras, pnet/training.json, pnet/checkpoints/
      eval/results.json
      logs/<stage>/                     TensorBoard
      export/                           default export base

    <export_dir>/<model_name>/
      <N>/                              SavedModel version N (TF Serving)
      artifacts_<N>/                    TFLite and .keras files of version N
      parity_<N>.json                   the parity report of version N
"""

import os


def label_png(folder, image_id):
    """The label PNG of ``image_id`` in ``folder`` (pseudo-labels and masks: ``<id>.png``)."""
    return os.path.join(folder, image_id + ".png")


class RunLayout:
    """Paths of one run directory.

    Args:
        model_dir: the run's ``--model_dir``.

    Example:
        >>> RunLayout("runs/voc").lnet_model
        'runs/voc/lnet/lnet.keras'
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir

    def _path(self, *parts):
        return os.path.join(self.model_dir, *parts)

    @property
    def run_config(self):
        return self._path("run_config.json")

    @property
    def flags_file(self):
        return self._path("flags.txt")

    @property
    def stage_settings(self):
        return self._path("stages.json")

    @property
    def data_summary(self):
        return self._path("data_summary.json")

    def stage_dir(self, stage):
        """The folder a training stage keeps its model and checkpoints in."""
        return self._path(stage)

    def checkpoints(self, stage):
        return self._path(stage, "checkpoints")

    def lnet_round_checkpoints(self, round_number):
        """Checkpoints of L-Net round ``round_number`` (1: the stage's own folder)."""
        if round_number == 1:
            return self.checkpoints("lnet")
        return self._path("lnet", f"round{round_number}", "checkpoints")

    def lnet_round_labels(self, round_number):
        """The weak images' pseudo-labels that L-Net round ``round_number`` learns from."""
        return self._path("lnet", f"round{round_number}", "labels")

    def lnet_round_logs(self, round_number):
        """TensorBoard folder of L-Net round ``round_number``."""
        return self.logs("lnet" if round_number == 1 else f"lnet_round{round_number}")

    @property
    def lnet_model(self):
        return self._path("lnet", "lnet.keras")

    @property
    def lnet_input(self):
        """The sizes the L-Net was trained at (``LNetInput``), for label transfer."""
        return self._path("lnet", "lnet_input.json")

    @property
    def lnet_summary(self):
        """How well the trained L-Net's classifier ranks the labels of the eval split."""
        return self._path("lnet", "summary.json")

    @property
    def calibration_ids(self):
        """Strong images held out of L-Net training for self-calibration."""
        return self._path("lnet", "calibration_ids.txt")

    @property
    def pseudo_label_dir(self):
        return self._path("pseudo_labels")

    def pseudo_label(self, image_id):
        return label_png(self.pseudo_label_dir, image_id)

    @property
    def pseudo_label_summary(self):
        return self._path("pseudo_labels.json")

    @property
    def pnet_model(self):
        return self._path("pnet", "pnet.keras")

    @property
    def pnet_training(self):
        """What the P-Net was trained on: steps and images per step (for fair ratios)."""
        return self._path("pnet", "training.json")

    @property
    def discriminator_model(self):
        return self._path("pnet", "discriminator.keras")

    @property
    def results(self):
        return self._path("eval", "results.json")

    def logs(self, stage):
        return self._path("logs", stage)

    @property
    def default_export_dir(self):
        return self._path("export")


class ExportLayout:
    """Paths of one model under a TF Serving base path.

    Args:
        export_dir: the base path (``--model_base_path`` is ``<export_dir>/<model_name>``).
        model_name: the TF Serving model name.
    """

    def __init__(self, export_dir, model_name):
        self.root = os.path.join(export_dir, model_name)

    def version_dir(self, version):
        return os.path.join(self.root, str(version))

    def artifacts_dir(self, version):
        return os.path.join(self.root, f"artifacts_{version}")

    def parity_report(self, version):
        return os.path.join(self.root, f"parity_{version}.json")

    def staging_dir(self, version):
        return os.path.join(self.root, f".staging-{version}-{os.getpid()}")

    def versions(self):
        """The version numbers that have a SavedModel folder or an artifacts folder."""
        if not os.path.isdir(self.root):
            return []
        found = set()
        for name in os.listdir(self.root):
            if name.isdigit():
                found.add(int(name))
            elif name.startswith("artifacts_") and name[len("artifacts_"):].isdigit():
                found.add(int(name[len("artifacts_"):]))
        return sorted(found)

    def next_version(self):
        """1 + the largest version in use, by a SavedModel or an artifacts folder."""
        return max(self.versions(), default=0) + 1
