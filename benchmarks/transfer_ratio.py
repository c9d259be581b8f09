"""TS3 vs the fully supervised baseline on the embedded set: the ratio table.

python benchmarks/transfer_ratio.py [--work_dir=/tmp/tss_transfer_ratio] [--flagfile=demo.flags]
    [--strong_classes=disc,square,triangle] [extra trainers.run flags ...]

Runs, with one schedule (the flag file's):
  full      --mode=full on every mask (the baseline),
  lnet      L-Net pseudo-labels alone on the eval split (given true image labels),
  no_adv    P-Net on strong masks + pseudo-labels, --lambda_adv=0,
  ts3       the same with the adversarial term,
and prints mIoU (overall, strong, weak) and each as a ratio of the baseline.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def trainer(flagfile, data_dir, model_dir, *extra):
    command = [sys.executable, "-m", "trainers.run", f"--flagfile={flagfile}",
               f"--data_dir={data_dir}", f"--class_names_file={data_dir}/class_names.txt",
               f"--model_dir={model_dir}", *extra]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def results(model_dir):
    with open(os.path.join(model_dir, "eval", "results.json")) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/tss_transfer_ratio")
    parser.add_argument("--flagfile", default=os.path.join(ROOT, "demo.flags"))
    parser.add_argument("--strong_classes", default="disc,square,triangle")
    args, extra = parser.parse_known_args()
    data_dir = os.path.join(args.work_dir, "voc")
    common = [f"--strong_classes={args.strong_classes}", *extra]
    runs = {name: os.path.join(args.work_dir, name) for name in ("full", "no_adv", "ts3")}

    trainer(args.flagfile, data_dir, runs["full"], "--mode=full", "--stages=data,pnet,eval", *common)
    baseline = os.path.join(runs["full"], "eval", "results.json")
    trainer(args.flagfile, data_dir, runs["ts3"], "--stages=data,lnet,transfer", *common)
    if not os.path.exists(runs["no_adv"]):
        shutil.copytree(runs["ts3"], runs["no_adv"])
    trainer(args.flagfile, data_dir, runs["no_adv"], "--stages=pnet,eval", "--lambda_adv=0",
            f"--baseline_results={baseline}", *common)
    trainer(args.flagfile, data_dir, runs["ts3"], "--stages=pnet,eval",
            f"--baseline_results={baseline}", *common)

    import keras
    from tss_keras.config import DiffusionConfig
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.pools import parse_strong_classes
    from tss_keras.data.voc import load_split
    from tss_keras.evaluation.report import add_baseline_ratio, build_results
    from tss_keras.transfer.evaluate import label_transfer_confusion

    names = load_class_names(os.path.join(data_dir, "class_names.txt"))
    split = parse_strong_classes(args.strong_classes, names)
    records, _ = load_split(data_dir, "val", names)
    lnet = keras.saving.load_model(os.path.join(runs["ts3"], "lnet", "lnet.keras"), safe_mode=True)
    lnet_results = build_results(label_transfer_confusion(lnet, records, len(names),
                                                          DiffusionConfig()),
                                 names, split, len(records))
    add_baseline_ratio(lnet_results, baseline)

    table = {"full": results(runs["full"]), "lnet": lnet_results,
             "no_adv": results(runs["no_adv"]), "ts3": results(runs["ts3"])}
    print(f"\n{'run':<8} {'mIoU':>7} {'strong':>7} {'weak':>7} | {'ratio':>6} {'strong':>7} {'weak':>7}")
    for name, r in table.items():
        ratio = r.get("ratio_to_baseline", {"miou": 1.0, "miou_strong": 1.0, "miou_weak": 1.0})
        print(f"{name:<8} {r['miou']:7.4f} {r['miou_strong']:7.4f} {r['miou_weak']:7.4f} | "
              f"{ratio['miou']:6.3f} {ratio['miou_strong']:7.3f} {ratio['miou_weak']:7.3f}")
    with open(os.path.join(args.work_dir, "transfer_ratio.json"), "w") as f:
        json.dump({k: {m: v.get(m) for m in ("miou", "miou_strong", "miou_weak",
                                                "ratio_to_baseline")}
                   for k, v in table.items()}, f, indent=2)


if __name__ == "__main__":
    main()
