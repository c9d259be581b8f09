"""Training input pipeline throughput (images/s) at crop 321, per pool.

python benchmarks/input_pipeline.py [--data_dir=D --class_names_file=F] [--strong_classes=...]
    [--crop_size=321] [--batch_size=8] [--batches=40]

Without --data_dir, the embedded set is generated into a temporary directory.
Reports the strong stream (image + mask), the weak stream (image + labels),
and the two zipped as one train step consumes them, all seeded and
deterministic, as training builds them.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def images_per_second(dataset, batches, images_per_batch):
    iterator = iter(dataset)
    next(iterator)  # warm-up: builds the pipeline and fills the prefetch buffer
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * images_per_batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir")
    parser.add_argument("--class_names_file")
    parser.add_argument("--strong_classes", default="disc,square,triangle")
    parser.add_argument("--crop_size", type=int, default=321)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()

    from tss_keras.data import synthetic
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.pipeline import strong_dataset, weak_dataset, zip_streams
    from tss_keras.data.pools import build_pools, parse_strong_classes
    from tss_keras.data.voc import load_split

    data_dir, names_file = args.data_dir, args.class_names_file
    if not data_dir:
        data_dir = tempfile.mkdtemp(prefix="tss_bench_")
        synthetic.generate(data_dir)
        names_file = os.path.join(data_dir, "class_names.txt")
    names = load_class_names(names_file)
    records, _ = load_split(data_dir, "train", names)
    pools = build_pools(records, parse_strong_classes(args.strong_classes, names))
    crop, batch = (args.crop_size, args.crop_size), args.batch_size
    strong = strong_dataset(pools.strong, len(names), crop, batch, seed=0)
    weak = weak_dataset(pools.weak, len(names), crop, batch, seed=0)
    result = {
        "cpu_cores": os.cpu_count(), "crop_size": args.crop_size, "batch_size": batch,
        "strong_images_per_s": images_per_second(strong, args.batches, batch),
        "weak_images_per_s": images_per_second(weak, args.batches, batch),
        "zipped_images_per_s": images_per_second(zip_streams(strong, weak), args.batches, 2 * batch),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
