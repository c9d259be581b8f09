"""The ``export`` stage: a new SavedModel / TFLite / .keras version of the run's P-Net."""

from tss_keras.exporting.exporter import check_exportable, export_run
from tss_keras.stages.base import Stage


class ExportStage(Stage):
    """Exports and checks parity; every run of the stage writes a new version."""

    name = "export"

    def output(self, layout):
        return None

    def owned_paths(self, layout):
        return []

    def check(self, context, planned):
        if "pnet" not in planned:
            check_exportable(context.config.model_dir)

    def run(self, context):
        if not context.cluster.is_chief:
            return None
        report = export_run(context.config)
        print(f"Exported version {report['version']} -> "
              f"{report['saved_model'] or report['artifacts_dir']}")
        return report["saved_model"] or report["artifacts_dir"]
