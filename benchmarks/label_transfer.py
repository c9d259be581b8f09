"""Label-transfer quality and diffusion throughput on the embedded set.

python benchmarks/label_transfer.py [--work_dir=/tmp/tss_label_transfer] [--lnet_steps=600]

Trains an L-Net on the embedded set with half the classes strong (or reuses a
run's L-Net with --model_dir), then scores on weak-pool training images
against their hidden masks (read here only, for scoring):
  (a) class-agnostic IoU (agnostic map > 0.5 vs any-class),
  (b) pseudo-label mIoU over background + weak classes (void pseudo-labels
      are not counted; their share is reported),
  (c) the same for CAM argmax alone and for diffusion switched off;
and self-diffusion throughput at 321x321.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def train(work_dir, lnet_steps):
    subprocess.run([sys.executable, "-m", "trainers.run", f"--flagfile={ROOT}/demo.flags",
                    f"--data_dir={work_dir}/voc", f"--class_names_file={work_dir}/voc/class_names.txt",
                    f"--model_dir={work_dir}/run", f"--lnet_steps={lnet_steps}",
                    "--stages=data,lnet"], check=True, cwd=ROOT)
    return f"{work_dir}/voc", f"{work_dir}/voc/class_names.txt", f"{work_dir}/run"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/tss_label_transfer")
    parser.add_argument("--lnet_steps", type=int, default=600)
    parser.add_argument("--model_dir", default=None, help="reuse this run (with --data_dir)")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--strong_classes", default="disc,square,triangle")
    args = parser.parse_args()

    if args.model_dir:
        data_dir, model_dir = args.data_dir, args.model_dir
        names_file = os.path.join(data_dir, "class_names.txt")
    else:
        data_dir, names_file, model_dir = train(args.work_dir, args.lnet_steps)

    import keras
    import tensorflow as tf
    from tss_keras.config import DiffusionConfig
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.voc import load_split, read_image, read_mask
    from tss_keras.evaluation.confusion import confusion_matrix, mean_iou
    from tss_keras.transfer import diffusion as dif

    names = load_class_names(names_file)
    split = parse_strong_classes(args.strong_classes, names)
    records, _ = load_split(data_dir, "train", names)
    weak_ids = {e.image_id for e in build_pools(records, split).weak}
    weak_records = [r for r in records if r.image_id in weak_ids]
    lnet = keras.saving.load_model(os.path.join(model_dir, "lnet", "lnet.keras"), safe_mode=True)
    config = DiffusionConfig()
    k = len(names)
    variants = {"cam_argmax": None, "lnet_no_diffusion": 0, "lnet_diffusion": config.iterations}
    confusions = {v: np.zeros((k, k), np.int64) for v in variants}
    void = {v: 0 for v in variants}
    total_pixels = 0
    agnostic = np.zeros((2, 2), np.int64)

    def make_transfer(iterations):
        return tf.function(lambda image, fg, cams, labels, features: dif.scores_to_labels(
            dif.transfer_scores(image, fg, cams, labels, features, radius=config.radius,
                                iterations=iterations, color_scale=config.color_scale,
                                feature_scale=config.feature_scale,
                                feature_source=config.feature_source,
                                working_stride=config.working_stride,
                                cam_power=config.cam_power, cam_weight=config.cam_weight),
            labels, config.confidence), reduce_retracing=True)

    transfer_fns = {v: make_transfer(i) for v, i in variants.items() if i is not None}

    @tf.function(reduce_retracing=True)
    def infer(image):
        return lnet(image, training=False)

    for record in weak_records:
        image = read_image(record.image_path).astype(np.float32)[None]
        mask = read_mask(record.mask_path, k)
        labels = multi_hot(record.labels, k)[None]
        out = infer(image)
        fg = tf.sigmoid(out["agnostic"])
        agnostic += confusion_matrix((fg.numpy()[0, ..., 0] > 0.5).astype(np.int64),
                                     np.where(mask == 255, 255, (mask > 0).astype(np.int64)), 2)
        total_pixels += mask.size
        for variant, iterations in variants.items():
            if iterations is None:
                pred = dif.cam_argmax_labels(out["cam"], labels, image.shape[1:3])
            else:
                pred = transfer_fns[variant](image, fg, out["cam"], labels, out["features"])
            pred = pred.numpy()[0]
            void[variant] += int((pred == 255).sum())
            confusions[variant] += confusion_matrix(pred, mask, k)

    weak_eval = [0] + sorted(split.weak)
    table = {"agnostic_iou_weak_pool": mean_iou(agnostic, [1])}
    for variant in variants:
        table[variant] = {"miou_weak_classes": mean_iou(confusions[variant], weak_eval),
                          "void_fraction": void[variant] / total_pixels}

    size = 321
    images = tf.random.uniform([1, size, size, 3], 0, 255)
    fg = tf.random.uniform([1, size, size, 1])
    cams = tf.random.uniform([1, size // 8, size // 8, k - 1])
    labels = tf.constant(multi_hot({1, 4}, k)[None])
    feats = tf.random.uniform([1, size // 8, size // 8, 64])
    run = tf.function(lambda a, b, c, d, e: dif.transfer_scores(
        a, b, c, d, e, radius=config.radius, iterations=config.iterations,
        working_stride=config.working_stride))
    run(images, fg, cams, labels, feats)
    count, start = 20, time.perf_counter()
    for _ in range(count):
        run(images, fg, cams, labels, feats).numpy()
    table["diffusion_images_per_s_321"] = count / (time.perf_counter() - start)
    table["num_weak_images"] = len(weak_records)
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
