"""Exports a trained run: SavedModel (TF Serving layout), TFLite, .keras, and a parity report.

Everything is built in a staging folder next to the versions, checked for
parity against the Keras P-Net, and only then renamed into place
(``<export_dir>/<model_name>/<version>/``), so a crash or a failed check never
leaves a half or bad version for a server to pick up.
"""

import json
import os
import shutil

import keras
import tensorflow as tf

from tss_keras.data.class_names import load_class_names
from tss_keras.data.voc import load_split, read_image
from tss_keras.errors import DataError, UsageError
from tss_keras.files import write_json
from tss_keras.layout import ExportLayout, RunLayout
from tss_keras.exporting import serving, tflite
from tss_keras.exporting.parity import ParityReport, resize_image
from tss_keras.models.encoder import encoder_of

THRESHOLD_SETTINGS = {  # parity report artifact -> the setting holding its threshold
    "saved_model": "min_saved_model_agreement",
    "saved_model_predict_images": "min_saved_model_agreement",
    "keras": "min_saved_model_agreement",
    "tflite_none": "min_tflite_float_agreement",
    "tflite_fp16": "min_tflite_fp16_agreement",
    "tflite_int8": "min_tflite_int8_agreement",
}


def _records(config, split, count, spread=False):
    names = load_class_names(config.data.class_names_file)
    records, _ = load_split(config.data.data_dir, split, names, skip_bad=True)
    if spread:
        records = records[::max(1, len(records) // count)]
    return records[:count]


def check_exportable(model_dir):
    """Raises a DataError unless ``model_dir`` holds a trained P-Net."""
    path = RunLayout(model_dir).pnet_model
    if not os.path.isfile(path):
        raise DataError(f"{path}: no trained P-Net in --model_dir; run the pnet stage first")


def export_run(config):
    """Exports a run's P-Net as ``config.export`` says; returns the parity report.

    The report is also written to ``parity_<N>.json`` beside the version.

    Args:
        config: the RunConfig of the run (``RunConfig.read(model_dir)``), with
            ``export`` settings and, optionally, another ``data_dir`` (for the
            parity images and int8 calibration).
    """
    run_layout = RunLayout(config.model_dir)
    export = config.export
    check_exportable(config.model_dir)
    class_names = load_class_names(config.data.class_names_file)
    layout = ExportLayout(export.export_dir or run_layout.default_export_dir, export.model_name)
    version = export.export_version if export.export_version is not None else layout.next_version()
    target, artifacts_target = layout.version_dir(version), layout.artifacts_dir(version)
    taken = [p for p in (target, artifacts_target) if os.path.exists(p)]
    if taken and not config.overwrite:
        raise UsageError(f"--export_version: {taken[0]} exists already; pass --overwrite to "
                         f"replace version {version}")
    size = tuple(export.tflite_input_size or config.data.crop_size)
    staging = layout.staging_dir(version)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "artifacts"))
    try:
        thresholds = {name: getattr(export, setting)
                      for name, setting in THRESHOLD_SETTINGS.items()}
        report = _build_and_check(config, run_layout, class_names, staging, size, thresholds)
        report.update(model_name=export.model_name, version=version,
                      exported_with={"tensorflow": tf.__version__, "keras": keras.__version__})
        if not report["passed"]:
            failed = [n for n, a in report["artifacts"].items() if not a["passed"]]
            print(json.dumps(report, indent=2))
            raise DataError(f"{layout.root}: export failed the parity check for {failed}; "
                            f"no version {version} was written")
        _move_into_place(staging, target, artifacts_target, "saved_model" in export.export_formats)
        report["saved_model"] = target if "saved_model" in export.export_formats else None
        report["artifacts_dir"] = artifacts_target
        write_json(layout.parity_report(version), report)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging, target, artifacts_target, has_saved_model):
    """Renames the checked artifacts into place; the SavedModel version goes last."""
    for path in (artifacts_target, target):
        if os.path.exists(path):
            trash = path + f".old-{os.getpid()}"
            os.replace(path, trash)
            shutil.rmtree(trash)
    os.replace(os.path.join(staging, "artifacts"), artifacts_target)
    if has_saved_model:
        os.replace(os.path.join(staging, "saved_model"), target)


def _build_and_check(config, run_layout, class_names, staging, size, thresholds):
    export = config.export
    pnet = keras.saving.load_model(run_layout.pnet_model, safe_mode=True)
    num_classes = len(class_names)
    images = [r.image_path for r in _records(config, config.data.eval_split, export.parity_images)]
    report = ParityReport(thresholds)
    decoded = [tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
               for p in images]
    reference = [pnet(tf.cast(img, tf.float32)[None], training=False).numpy()[0] for img in decoded]
    artifacts_dir = os.path.join(staging, "artifacts")

    if "saved_model" in export.export_formats:
        path = os.path.join(staging, "saved_model")
        serving.write_saved_model(pnet, num_classes, path, class_names)
        loaded = tf.saved_model.load(path)
        serve, predict = loaded.signatures["serving_default"], loaded.signatures["predict_images"]
        for image_path, image, ref in zip(images, decoded, reference):
            out = serve(image_bytes=tf.constant([open(image_path, "rb").read()]))
            report.add_classes("saved_model", ref, out["classes"].numpy()[0])
            logits = predict(images=tf.cast(image, tf.float32)[None])["logits"].numpy()[0]
            report.add("saved_model_predict_images", ref, logits)
    if "keras" in export.export_formats:
        shutil.copy(run_layout.pnet_model, os.path.join(artifacts_dir, "pnet.keras"))
        encoder_of(pnet).save(os.path.join(artifacts_dir, "encoder.keras"))
        if os.path.isfile(run_layout.lnet_model):
            shutil.copy(run_layout.lnet_model, os.path.join(artifacts_dir, "lnet.keras"))
        copy = keras.saving.load_model(os.path.join(artifacts_dir, "pnet.keras"), safe_mode=True)
        for image, ref in zip(decoded, reference):
            report.add("keras", ref, copy(tf.cast(image, tf.float32)[None]).numpy()[0])
    if "tflite" in export.export_formats:
        resized = [resize_image(image, size) for image in decoded]
        resized_reference = [pnet(img[None], training=False).numpy()[0] for img in resized]
        for quantization in export.tflite_quantization:
            calibration = None
            if quantization == "int8":
                calibration = [resize_image(read_image(r.image_path), size) for r in
                               _records(config, config.data.train_split, 32, spread=True)]
            model = tflite.convert(pnet, size, quantization, calibration)
            path = os.path.join(artifacts_dir, f"model_{quantization}.tflite")
            with open(path, "wb") as f:
                f.write(model)
            runner = tflite.TFLiteRunner(path)
            for image, ref in zip(resized, resized_reference):
                report.add(f"tflite_{quantization}", ref, runner.logits(image),
                           float_artifact=quantization != "int8")
    with open(os.path.join(artifacts_dir, "class_names.txt"), "w") as f:
        f.write("\n".join(class_names) + "\n")
    return report.as_dict(len(images))
