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
import numpy as np
import tensorflow as tf

from tss_keras.data.class_names import load_class_names
from tss_keras.data.errors import DataError
from tss_keras.data.voc import load_split, read_image
from tss_keras.errors import UsageError
from tss_keras.exporting import serving, tflite
from tss_keras.exporting.parity import ParityReport, resize_image
from tss_keras.models.encoder import encoder_of

FORMATS = ("saved_model", "tflite", "keras")
DEFAULT_THRESHOLDS = {"saved_model": 0.999, "saved_model_predict_images": 0.999,
                      "tflite_none": 0.995, "tflite_fp16": 0.99, "tflite_int8": 0.95,
                      "keras": 0.999}
RUN_CONFIG = "run_config.json"


def read_run_config(model_dir):
    """The settings a run was trained with (``<model_dir>/run_config.json``)."""
    path = os.path.join(model_dir, RUN_CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: not a trainers.run model_dir (no {RUN_CONFIG})") from None


def next_version(model_root):
    """1 + the largest integer version folder under ``model_root`` (1 if none)."""
    versions = [int(n) for n in os.listdir(model_root) if n.isdigit()] if os.path.isdir(model_root) else []
    return max(versions, default=0) + 1


def _parity_images(run, count):
    names = load_class_names(run.get("class_names_file"))
    records, _ = load_split(run["data_dir"], run.get("eval_split", "val"), names, skip_bad=True)
    return [r.image_path for r in records[:count]]


def _calibration_images(run, size, count=32):
    names = load_class_names(run.get("class_names_file"))
    records, _ = load_split(run["data_dir"], run.get("train_split", "train"), names, skip_bad=True)
    step = max(1, len(records) // count)
    return [resize_image(read_image(r.image_path), size) for r in records[::step][:count]]


def export_run(model_dir, export_dir, model_name="ts3", version=None, formats=FORMATS,
               quantizations=("none", "fp16", "int8"), tflite_input_size=None,
               num_parity_images=20, thresholds=None, overwrite=False, data_dir=None):
    """Exports the run's P-Net and returns the parity report (also written as JSON).

    Args:
        model_dir: a ``trainers.run`` model_dir with ``pnet/pnet.keras``.
        export_dir: the TF Serving base path; versions go to
            ``<export_dir>/<model_name>/<version>/``.
        model_name: the TF Serving model name.
        version: an integer; None takes the next free one.
        formats: any of ``saved_model``, ``tflite``, ``keras``.
        quantizations: TFLite variants: ``none`` (float32), ``fp16``, ``int8``.
        tflite_input_size: (height, width); default the run's crop size.
        num_parity_images: validation images for the parity check.
        thresholds: {artifact: minimum argmax agreement}; see DEFAULT_THRESHOLDS.
        overwrite: replace an existing version.
        data_dir: override the run's data_dir (for parity and int8 calibration).
    """
    pnet_path = os.path.join(model_dir, "pnet", "pnet.keras")
    if not os.path.isfile(pnet_path):
        raise DataError(f"{pnet_path}: no trained P-Net in --model_dir; run the pnet stage first")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"--formats: unknown format(s) {unknown} (choose from {', '.join(FORMATS)})")
    bad_q = [q for q in quantizations if q not in tflite.QUANTIZATIONS]
    if bad_q:
        raise UsageError(f"--tflite_quantization: unknown {bad_q} (choose from none, fp16, int8)")
    run = read_run_config(model_dir)
    if data_dir:
        run["data_dir"] = data_dir
    class_names = load_class_names(run.get("class_names_file"))
    model_root = os.path.join(export_dir, model_name)
    version = int(version) if version is not None else next_version(model_root)
    target = os.path.join(model_root, str(version))
    artifacts_target = os.path.join(model_root, f"artifacts_{version}")
    if os.path.exists(target) and not overwrite:
        raise UsageError(f"--version: {target} exists already; pass --overwrite to replace it")
    size = tuple(tflite_input_size or run.get("crop_size") or (321, 321))

    staging = os.path.join(model_root, f".staging-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "artifacts"))
    try:
        report = _build_and_check(pnet_path, model_dir, run, class_names, staging, formats,
                                  quantizations, size, num_parity_images, thresholds)
        report.update(model_name=model_name, version=version)
        if not report["passed"]:
            failed = [n for n, a in report["artifacts"].items() if not a["passed"]]
            print(json.dumps(report, indent=2))
            raise DataError(f"{model_root}: export failed the parity check for {failed}; "
                            f"no version {version} was written")
        _move_into_place(staging, target, artifacts_target, "saved_model" in formats)
        report["saved_model"] = target if "saved_model" in formats else None
        report["artifacts_dir"] = artifacts_target
        with open(os.path.join(model_root, f"parity_{version}.json"), "w") as f:
            json.dump(report, f, indent=2)
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


def _build_and_check(pnet_path, model_dir, run, class_names, staging, formats, quantizations,
                     size, num_parity_images, thresholds):
    pnet = keras.saving.load_model(pnet_path, safe_mode=True)
    num_classes = len(class_names)
    images = _parity_images(run, num_parity_images)
    report = ParityReport({**DEFAULT_THRESHOLDS, **(thresholds or {})})
    decoded = [tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
               for p in images]
    reference = [pnet(tf.cast(img, tf.float32)[None], training=False).numpy()[0] for img in decoded]
    artifacts_dir = os.path.join(staging, "artifacts")

    if "saved_model" in formats:
        path = os.path.join(staging, "saved_model")
        serving.write_saved_model(pnet, num_classes, path, class_names)
        loaded = tf.saved_model.load(path)
        serve, predict = loaded.signatures["serving_default"], loaded.signatures["predict_images"]
        for image_path, image, ref in zip(images, decoded, reference):
            out = serve(image_bytes=tf.constant([open(image_path, "rb").read()]))
            report.add_classes("saved_model", ref, out["classes"].numpy()[0])
            logits = predict(images=tf.cast(image, tf.float32)[None])["logits"].numpy()[0]
            report.add("saved_model_predict_images", ref, logits)
    if "keras" in formats:
        lnet_path = os.path.join(model_dir, "lnet", "lnet.keras")
        shutil.copy(pnet_path, os.path.join(artifacts_dir, "pnet.keras"))
        encoder_of(pnet).save(os.path.join(artifacts_dir, "encoder.keras"))
        if os.path.isfile(lnet_path):
            shutil.copy(lnet_path, os.path.join(artifacts_dir, "lnet.keras"))
        copy = keras.saving.load_model(os.path.join(artifacts_dir, "pnet.keras"), safe_mode=True)
        for image, ref in zip(decoded, reference):
            report.add("keras", ref, copy(tf.cast(image, tf.float32)[None]).numpy()[0])
    if "tflite" in formats:
        resized = [resize_image(image, size) for image in decoded]
        resized_reference = [pnet(img[None], training=False).numpy()[0] for img in resized]
        for quantization in quantizations:
            calibration = _calibration_images(run, size) if quantization == "int8" else None
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
