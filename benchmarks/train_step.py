"""Train-step throughput: adversarial vs supervised P-Net step, L-Net step, input pipeline, fit.

python benchmarks/train_step.py [--backbones=mobilenetv2,resnet50] [--crop_size=321]
    [--batch_size=4] [--steps=6] [--d_downsample=...] [--d_downsample_by=...]
    [--discriminator=...]

Every step runs through the same TrainingLoop and the same seeded,
deterministic tf.data pipelines that training uses (the embedded set at the
given crop; the weak stream reads its masks as stand-in pseudo-labels). A TS3
step and a --mode=full step both consume a strong and a weak batch, so their
time per image compares like with like. For each step it reports images/s
and the achieved FLOP/s as a share of this machine's dense peak, measured by
timing a large matmul in the same run. A step's FLOPs are 3x the forward
FLOPs of every network pass in it (forward + backward, the usual
convention), counted by TF's cost model on each network's forward graph. The
traced training step graph is not counted: the cost model over-counts it
(1.8x this count for the supervised step, and shares above 100 % of peak).
It also times the supervised step through Keras ``fit`` on the same data,
against the loop, both in steady state (one call, tracing and the data
iterator's start and teardown left out). Prints one JSON object.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dense_peak_flops(size=2048, repeats=10):
    """FLOP/s of a float32 [size, size] matmul on this machine."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        matmul(a, b).numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def graph_flops(concrete_function):
    """Floating-point operations of one call of a traced function (TF's op cost model)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = concrete_function.graph
    return model_analyzer.profile(graph, options=options).total_float_ops


def forward_flops(model, shape):
    """FLOPs of one training-mode forward pass of ``model`` on one input of ``shape``."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=True), autograph=False)
    return graph_flops(forward.get_concrete_function(tf.TensorSpec([1, *shape], tf.float32)))


def embedded_set(directory):
    from tss_keras.data import synthetic
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.voc import load_split

    if not os.path.isfile(os.path.join(directory, "synthetic.json")):
        synthetic.generate(directory)
    names = load_class_names(os.path.join(directory, "class_names.txt"))
    records, _ = load_split(directory, "train", names)
    weak_ids = {r.image_id for r in records}
    pools = build_pools(records, parse_strong_classes("disc,square,triangle", names))
    weak_masks = {r.image_id: r.mask_path for r in records if r.image_id in weak_ids}
    return names, pools, [weak_masks[e.image_id] for e in pools.weak]


def seconds_per_step(stamps, warmup):
    """Mean seconds between the step-end ``stamps`` after the first ``warmup`` steps."""
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def time_loop(strategy, trainer, make_stream, trackables, steps, warmup=2):
    """Seconds per step over ``steps`` steps after ``warmup`` (tracing excluded)."""
    from tss_keras.training.loop import TrainingLoop

    stamps = []
    loop = TrainingLoop(strategy, trainer, make_stream, warmup + steps,
                        tempfile.mkdtemp(prefix="tss_bench_"), trackables,
                        checkpoint_every=10 ** 9, verbose=False,
                        monitors=[lambda step, values: stamps.append(time.perf_counter())])
    loop.run()
    return seconds_per_step(stamps, warmup)


def time_fit(trainer, dataset, steps, warmup=2):
    """Seconds per step of Keras ``fit`` over ``steps`` steps after ``warmup``, as ``time_loop``.

    One ``fit`` call, stamped at each batch's end: tracing, the iterator's start (its
    shuffle buffer) and its teardown after the last step (up to seconds) are left out,
    as they are from the loop's time, so the two measure the same steady-state step.
    """
    import keras

    stamps = []
    stamp = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: stamps.append(time.perf_counter()))
    trainer.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[stamp])
    return seconds_per_step(stamps, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv2,resnet50")
    parser.add_argument("--output_stride", type=int, default=16)
    parser.add_argument("--crop_size", type=int, default=321)
    parser.add_argument("--batch_size", type=int, default=4, help="images per stream")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--discriminator", default=None, help="default: the config's")
    parser.add_argument("--d_downsample", type=int, default=None, help="default: the config's")
    parser.add_argument("--d_downsample_by", default=None, help="default: the config's")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "tss_bench_voc"))
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from benchmarks.input_pipeline import images_per_second
    from tss_keras.config import PNetConfig
    from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
    from tss_keras.data.pools import StrongExample
    from tss_keras.models.discriminator import build_discriminator
    from tss_keras.models.encoder import build_encoder
    from tss_keras.models.lnet import build_lnet
    from tss_keras.models.pnet import build_pnet
    from tss_keras.training import adversarial
    from tss_keras.training.lnet_model import LNetTrainer
    from tss_keras.training.ts3_model import TS3Model

    defaults = PNetConfig()
    design = args.discriminator or defaults.discriminator
    downsample = args.d_downsample or defaults.d_downsample
    downsample_by = args.d_downsample_by or defaults.d_downsample_by
    strategy = tf.distribute.get_strategy()
    names, pools, weak_masks = embedded_set(args.data_dir)
    k, b, s = len(names), args.batch_size, (args.crop_size, args.crop_size)
    d_channels, _ = adversarial.input_channels(design, k, downsample, downsample_by)
    stream = dict(crop_size=s, batch_size=b, seed=0)
    weak_as_strong = [StrongExample(e.image_id, e.image_path, m, e.labels)
                      for e, m in zip(pools.weak, weak_masks)]

    def pair_stream(shard, shards):
        return zip_streams(strong_dataset(pools.strong, k, shard_index=shard, num_shards=shards,
                                          **stream),
                           weak_dataset(pools.weak, k, pseudo_label_paths=weak_masks,
                                        shard_index=shard, num_shards=shards, **stream))

    def full_stream(shard, shards):
        return zip_streams(strong_dataset(pools.strong, k, shard_index=shard, num_shards=shards,
                                          **stream),
                           strong_dataset(weak_as_strong, k, shard_index=shard,
                                          num_shards=shards, **{**stream, "seed": 7}))

    def lnet_stream(shard, shards):
        return zip_streams(strong_dataset(pools.strong, k, shard_index=shard, num_shards=shards,
                                          base_size=args.crop_size, **stream),
                           weak_dataset(pools.weak, k, shard_index=shard, num_shards=shards,
                                        **stream))

    peak = dense_peak_flops()
    result = {"crop_size": args.crop_size, "images_per_stream": b, "discriminator": design,
              "d_downsample": downsample, "d_downsample_by": downsample_by,
              "dense_peak_gflops": peak / 1e9,
              "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU"}
    for backbone in args.backbones.split(","):
        row = {}

        def pnet_trainer(adversarial_step):
            pnet = build_pnet(build_encoder(backbone, args.output_stride), k)
            d = d_opt = None
            if adversarial_step:
                d = build_discriminator(d_channels, 64)
                d_opt = keras.optimizers.Adam(1e-4, 0.9, 0.99)
                d_opt.build(d.trainable_variables)
            trainer = TS3Model(pnet, d, k, d_optimizer=d_opt, design=design,
                               d_downsample=downsample, d_downsample_by=downsample_by)
            trainer.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
            trainer.optimizer.build(pnet.trainable_variables)
            return trainer, {"model": pnet}

        steps = {"adversarial": (pnet_trainer(True), pair_stream),
                 "supervised": (pnet_trainer(False), full_stream)}
        lnet = build_lnet(build_encoder(backbone, args.output_stride), k)
        lnet_trainer = LNetTrainer(lnet, k)
        lnet_trainer.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
        steps["lnet"] = ((lnet_trainer, {"model": lnet}), lnet_stream)
        image = (*s, 3)
        pnet_flops = forward_flops(steps["supervised"][0][0].pnet, image)
        d_size = -(-args.crop_size // downsample)  # what downsample gives (SAME / padded)
        d_map = (d_size, d_size, d_channels)
        step_flops = {  # 3x forward; every step has a strong and a weak batch of b images
            "supervised": 3 * 2 * b * pnet_flops,
            "adversarial": 3 * 2 * b * (pnet_flops + forward_flops(
                steps["adversarial"][0][0].discriminator, d_map)),
            "lnet": 3 * 2 * b * forward_flops(lnet, image)}
        for name, ((trainer, trackables), make_stream) in steps.items():
            seconds = time_loop(strategy, trainer, make_stream, trackables, args.steps)
            flops = step_flops[name]
            row[f"{name}_images_per_s"] = 2 * b / seconds
            row[f"{name}_gflop_per_step"] = flops / 1e9
            row[f"{name}_share_of_peak"] = flops / seconds / peak
        row["adversarial_over_supervised_time_per_image"] = (
            row["supervised_images_per_s"] / row["adversarial_images_per_s"])
        trainer, _ = pnet_trainer(False)
        row["supervised_fit_images_per_s"] = 2 * b / time_fit(trainer, full_stream(0, 1),
                                                               args.steps)
        row["loop_over_fit_speed"] = (row["supervised_images_per_s"]
                                      / row["supervised_fit_images_per_s"])
        row["input_pipeline_images_per_s"] = images_per_second(pair_stream(0, 1), 20, 2 * b)
        result[backbone] = row
        print(json.dumps({backbone: row}), flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
