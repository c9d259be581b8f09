"""Exports a trained run for TF Serving, phones and other Keras projects.

python -m export.run --model_dir=M --export_dir=E [--model_name=ts3] [--version=N]
    [--formats=saved_model,tflite,keras] [--tflite_quantization=none,fp16,int8]
    [--tflite_input_size=H,W] [--overwrite]
"""

import json

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from trainers.cli import parse_size, run_main

flags.DEFINE_string("model_dir", None, "A trainers.run model_dir with a trained P-Net.")
flags.DEFINE_string("export_dir", None, "TF Serving base path: versions go to <export_dir>/<model_name>/<N>/.")
flags.DEFINE_string("model_name", "ts3", "TF Serving model name.")
flags.DEFINE_integer("version", None, "Version number (default: the next free integer).")
flags.DEFINE_list("formats", ["saved_model", "tflite", "keras"], "Artifacts to write.")
flags.DEFINE_list("tflite_quantization", ["none", "fp16", "int8"], "TFLite variants: none (float32), fp16, int8.")
flags.DEFINE_list("tflite_input_size", None, "TFLite input H,W (default: the run's crop size).")
flags.DEFINE_integer("parity_images", 20, "Validation images for the parity check.")
flags.DEFINE_float("min_saved_model_agreement", 0.999, "Fail below this SavedModel argmax agreement.")
flags.DEFINE_float("min_tflite_float_agreement", 0.995, "Fail below this for float32 TFLite.")
flags.DEFINE_float("min_tflite_fp16_agreement", 0.99, "Fail below this for fp16 TFLite.")
flags.DEFINE_float("min_tflite_int8_agreement", 0.95, "Fail below this for int8 TFLite.")
flags.DEFINE_string("data_dir", None, "Override the run's data_dir (parity images, int8 calibration).")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tss_keras.exporting.exporter import export_run

    size = None
    if FLAGS.tflite_input_size is not None:
        size = parse_size("tflite_input_size", FLAGS.tflite_input_size)
    thresholds = {
        "saved_model": FLAGS.min_saved_model_agreement,
        "saved_model_predict_images": FLAGS.min_saved_model_agreement,
        "keras": FLAGS.min_saved_model_agreement,
        "tflite_none": FLAGS.min_tflite_float_agreement,
        "tflite_fp16": FLAGS.min_tflite_fp16_agreement,
        "tflite_int8": FLAGS.min_tflite_int8_agreement,
    }
    report = export_run(FLAGS.model_dir, FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                        tuple(FLAGS.formats), tuple(FLAGS.tflite_quantization), size,
                        FLAGS.parity_images, thresholds, FLAGS.overwrite, FLAGS.data_dir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(run_main(main))
