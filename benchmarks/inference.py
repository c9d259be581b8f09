"""Inference latency and throughput: Keras, SavedModel signature, TFLite float32/fp16/int8.

python benchmarks/inference.py [--backbones=mobilenetv2,resnet50] [--size=321] [--runs=10]

weights=None (timing only), 21 classes, output stride 16. Latency is the
median over --runs single-image calls after warm-up; throughput is images/s
at batch 8 (8 sequential invocations for TFLite, whose models take batch 1).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_ms(fn, runs):
    fn()
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv2,resnet50")
    parser.add_argument("--size", type=int, default=321)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from tss_keras.exporting import serving, tflite
    from tss_keras.models.encoder import build_encoder
    from tss_keras.models.pnet import build_pnet

    s, rows = args.size, []
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, s, s, 3)).astype(np.float32)
    eight = rng.uniform(0, 255, (8, s, s, 3)).astype(np.float32)
    calibration = [rng.uniform(0, 255, (s, s, 3)).astype(np.float32) for _ in range(8)]
    for backbone in args.backbones.split(","):
        pnet = build_pnet(build_encoder(backbone, 16), 21)
        keras_call = tf.function(lambda x: pnet(x, training=False))
        row = {"backbone": backbone}
        row["keras_ms"] = median_ms(lambda: keras_call(one).numpy(), args.runs)
        row["keras_batch8_img_s"] = 8000 / median_ms(lambda: keras_call(eight).numpy(), 3)
        with tempfile.TemporaryDirectory() as directory:
            serving.write_saved_model(pnet, 21, directory)
            predict = tf.saved_model.load(directory).signatures["predict_images"]
            row["saved_model_ms"] = median_ms(lambda: predict(images=one)["classes"].numpy(), args.runs)
            row["saved_model_batch8_img_s"] = 8000 / median_ms(
                lambda: predict(images=eight)["classes"].numpy(), 3)
            serve = tf.saved_model.load(directory).signatures["serving_default"]
            jpegs = tf.constant([tf.io.encode_jpeg(tf.cast(image, tf.uint8)).numpy()
                                 for image in eight])
            row["serving_default_ms"] = median_ms(
                lambda: serve(image_bytes=jpegs[:1])["classes"].numpy(), args.runs)
            row["serving_default_batch8_img_s"] = 8000 / median_ms(
                lambda: serve(image_bytes=jpegs)["classes"].numpy(), 3)
        for quantization in ("none", "fp16", "int8"):
            model = tflite.convert(pnet, (s, s), quantization, calibration)
            runner = tflite.TFLiteRunner(model, num_threads=os.cpu_count())
            row[f"tflite_{quantization}_ms"] = median_ms(lambda: runner.logits(one[0]), args.runs)
            row[f"tflite_{quantization}_batch8_img_s"] = 8000 / median_ms(
                lambda: [runner.logits(image) for image in eight], 3)
            row[f"tflite_{quantization}_mb"] = len(model) / 2**20
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'backbone':<12} {'artifact':<12} {'latency ms':>11} {'batch-8 img/s':>14}")
    for row in rows:
        for name, key in (("keras", "keras"), ("savedmodel", "saved_model"),
                          ("serving jpeg", "serving_default"),
                          ("tflite f32", "tflite_none"), ("tflite fp16", "tflite_fp16"),
                          ("tflite int8", "tflite_int8")):
            print(f"{row['backbone']:<12} {name:<12} {row[key + '_ms']:11.1f} "
                  f"{row[key + '_batch8_img_s']:14.2f}")


if __name__ == "__main__":
    main()
