"""Exports a trained run for TF Serving, phones and other Keras projects.

python -m export.run --model_dir=M [--export_dir=E] [--model_name=ts3] [--export_version=N]
    [--export_formats=saved_model,tflite,keras] [--tflite_quantization=none,fp16,int8]
    [--tflite_input_size=H,W] [--overwrite]

Starts from the settings the run was trained with (M/run_config.json); the
flags given here override them. Every artifact is checked against the Keras
P-Net before the version is renamed into place.
"""

import dataclasses
import json

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from tss_keras.config import ExportConfig
from tss_keras.config_flags import config_from_flags, define_flags
from trainers.cli import run_main

define_flags(flags.FLAGS, names={"model_dir", "overwrite", "data_dir"} |
             {f.name for f in dataclasses.fields(ExportConfig)})
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tss_keras.config import RunConfig
    from tss_keras.errors import UsageError
    from tss_keras.exporting.exporter import check_exportable, export_run

    if not FLAGS.model_dir:
        raise UsageError("--model_dir: this flag is required")
    check_exportable(FLAGS.model_dir)
    run = RunConfig.read(FLAGS.model_dir).replace(overwrite=False)
    report = export_run(config_from_flags(FLAGS, base=run))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(run_main(main))
