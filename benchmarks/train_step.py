"""Train-step throughput: adversarial P-Net step vs supervised step, L-Net step, input pipeline.

python benchmarks/train_step.py [--backbone=mobilenetv2] [--crop_size=321] [--batch_size=4]
    [--steps=5] [--cpu_replicas=0]

All steps run on in-memory tensors (no input pipeline) at the same backbone,
crop and batch; images/s counts every image a step consumes (a TS3 or L-Net
step takes a strong and a weak batch). The input pipeline is then timed on
the embedded set at the same crop and batch, to compare with what the
adversarial step consumes.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--output_stride", type=int, default=16)
    parser.add_argument("--crop_size", type=int, default=321)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cpu_replicas", type=int, default=0)
    args = parser.parse_args()

    from tss_keras.training.distribute import make_strategy
    strategy = make_strategy("auto", cpu_replicas=args.cpu_replicas)

    import keras
    import numpy as np
    import tensorflow as tf
    from benchmarks.input_pipeline import images_per_second
    from tss_keras.data import synthetic
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.voc import load_split
    from tss_keras.models.discriminator import build_discriminator
    from tss_keras.models.encoder import build_encoder
    from tss_keras.models.lnet import build_lnet
    from tss_keras.models.pnet import build_pnet
    from tss_keras.training.lnet_model import LNetTrainer
    from tss_keras.training.ts3_model import TS3Model

    num_classes, b, s = 21, args.batch_size, args.crop_size
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (b, s, s, 3)).astype(np.float32)
    mask = rng.integers(0, num_classes, (b, s, s, 1)).astype(np.uint8)
    labels = rng.integers(0, 2, (b, num_classes - 1)).astype(np.float32)
    strong = {"image": image, "mask": mask}
    weak = {"image": image, "mask": mask, "labels": labels}

    def timed(model, data, images_per_step):
        ds = tf.data.Dataset.from_tensors(data).repeat()
        model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
        start = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return args.steps * images_per_step / (time.perf_counter() - start)

    def pnet_trainer(adversarial):
        with strategy.scope():
            pnet = build_pnet(build_encoder(args.backbone, args.output_stride), num_classes)
            d = d_opt = None
            if adversarial:
                d = build_discriminator(num_classes)
                d_opt = keras.optimizers.Adam(1e-4, 0.9, 0.99)
                d_opt.build(d.trainable_variables)
            model = TS3Model(pnet, d, num_classes, mode="ts3" if adversarial else "full",
                             d_optimizer=d_opt)
            model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
        return model

    result = {"backbone": args.backbone, "crop_size": s, "batch_size_per_stream": b,
              "replicas": strategy.num_replicas_in_sync, "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU"}
    result["ts3_adversarial_step_images_per_s"] = timed(pnet_trainer(True), (strong, weak), 2 * b)
    result["supervised_step_images_per_s"] = timed(pnet_trainer(False), strong, b)
    result["adversarial_over_supervised_time_per_image"] = (
        result["supervised_step_images_per_s"] / result["ts3_adversarial_step_images_per_s"])
    with strategy.scope():
        lnet = LNetTrainer(build_lnet(build_encoder(args.backbone, args.output_stride), num_classes),
                           num_classes)
        lnet.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
    result["lnet_step_images_per_s"] = timed(lnet, (strong, {"image": image, "labels": labels}), 2 * b)

    data_dir = tempfile.mkdtemp(prefix="tss_bench_")
    synthetic.generate(data_dir)
    names = load_class_names(os.path.join(data_dir, "class_names.txt"))
    records, _ = load_split(data_dir, "train", names)
    pools = build_pools(records, parse_strong_classes("disc,square,triangle", names))
    pipeline = zip_streams(strong_dataset(pools.strong, len(names), (s, s), b),
                           weak_dataset(pools.weak, len(names), (s, s), b))
    result["input_pipeline_images_per_s"] = images_per_second(pipeline, 20, 2 * b)
    result["pipeline_over_adversarial_step"] = (
        result["input_pipeline_images_per_s"] / result["ts3_adversarial_step_images_per_s"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
