"""TS3 against the fair fully supervised baseline, per domain, discriminator design and seed.

python benchmarks/transfer_ratio.py [--work_dir=/tmp/tss_label_transfer] [--domains=all]
    [--designs=none,onehot,matched,agnostic] [--seeds=0,1] [--flagfile=demo.flags]
    [extra trainers.run flags]

Per domain (tss_keras.data.domains) and seed, with one schedule (the flag file's):
  full        --mode=full: the same images per step as TS3, all with their true masks;
  <design>    TS3 on strong masks + pseudo-labels; "none" is --lambda_adv=0, the others
              --discriminator=<design> with the flag file's --lambda_adv.
The L-Net and pseudo-labels come from --work_dir/<domain>/run (what
benchmarks/label_transfer.py trained, reused with the L-Net flags it was trained
with, e.g. --calibrate or --lnet_rounds=2; trained here if absent); the
pseudo-labels use the --diffusion_* values (pass --calibrate to calibrate them
instead). Reports
mIoU over the weak and strong classes on the val split, their ratio to the
baseline, and the P-Net's weak mIoU on its own weak training images next to
the quality of the pseudo-labels it learned from (masks read here only, for
scoring). Writes <work_dir>/transfer_ratio.json (domains measured by an earlier call
and not by this one stay in it).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def trainer(log, flagfile, data_dir, model_dir, *extra):
    command = [sys.executable, "-m", "trainers.run", f"--flagfile={flagfile}",
               f"--data_dir={data_dir}", f"--class_names_file={data_dir}/class_names.txt",
               f"--model_dir={model_dir}", "--nosynthetic_data", *extra]
    print("+", " ".join(command), flush=True)
    with open(log, "a") as out:
        subprocess.run(command, check=True, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def recorded_lnet_flags(model_dir):
    """The flags that name the L-Net already in ``model_dir`` as it was trained.

    benchmarks/label_transfer.py trains its L-Nets with ``--calibrate`` (strong images held
    out) and perhaps other L-Net flags (``--lnet_rounds=2``, ``--lnet_color_jitter``, a
    ``--seed``); the lnet stage has to be named with the same settings to be reused rather
    than refused. Only the lnet stage call gets them: the transfer stage here uses this
    script's own flags (the fixed --diffusion_* values unless told otherwise). Empty if no
    L-Net is there.
    """
    from tss_keras.config import RunConfig
    from tss_keras.config_flags import settings_as_flags
    from tss_keras.layout import RunLayout
    from tss_keras.stages.lnet import LNetStage
    from tss_keras.stages.orchestrator import read_recorded

    recorded = read_recorded(RunLayout(model_dir)).get("lnet", {})
    if not recorded:
        return []
    own = LNetStage().depends_on(RunConfig().replace(lnet_rounds=recorded.get("lnet_rounds", 1)))
    return settings_as_flags({k: v for k, v in recorded.items() if k in own})


def results(model_dir):
    with open(os.path.join(model_dir, "eval", "results.json")) as f:
        return json.load(f)


def weak_training_quality(model_dir, data_dir):
    """(P-Net weak mIoU on the weak pool's training images, pseudo-label weak mIoU there).

    Both against the hidden masks, void pseudo-labels counted as background.
    """
    import keras
    from PIL import Image

    from tss_keras.config import RunConfig
    from tss_keras.data.training_set import load_training_set
    from tss_keras.evaluation.confusion import confusion_matrix, mean_iou
    from tss_keras.evaluation.evaluator import evaluate_confusion
    from tss_keras.layout import RunLayout
    from tss_keras.data.voc import read_mask

    config = RunConfig.read(model_dir)
    training_set = load_training_set(config.data, verbose=False)
    k = training_set.num_classes
    weak_ids = {e.image_id for e in training_set.pools.weak}
    records = [r for r in training_set.records if r.image_id in weak_ids]
    pnet = keras.saving.load_model(RunLayout(model_dir).pnet_model, safe_mode=True)
    weak = sorted(training_set.class_split.weak)
    pnet_miou = mean_iou(evaluate_confusion(pnet, records, k, verbose=0), weak)
    pseudo = np.zeros((k, k), np.int64)
    for record in records:
        label = np.asarray(Image.open(RunLayout(model_dir).pseudo_label(record.image_id)))
        pseudo += confusion_matrix(np.where(label == 255, 0, label),
                                   read_mask(record.mask_path, k), k)
    return pnet_miou, mean_iou(pseudo, weak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/tss_label_transfer")
    parser.add_argument("--domains", default="all")
    parser.add_argument("--designs", default="none,onehot,matched,agnostic")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--flagfile", default=os.path.join(ROOT, "demo.flags"))
    parser.add_argument("--tag", default="", help="suffix of the TS3 runs' folders and names "
                                                  "(to compare a variant, e.g. --d_downsample=1)")
    args, extra = parser.parse_known_args()
    from benchmarks.reports import other_domains
    from tss_keras.data.domains import DOMAIN_NAMES, generate_domain, strong_classes
    from tss_keras.files import write_json

    domains = DOMAIN_NAMES if args.domains == "all" else tuple(args.domains.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    report = os.path.join(args.work_dir, f"transfer_ratio{args.tag}.json")
    table = other_domains(report, domains)
    for domain in domains:
        base = os.path.join(args.work_dir, domain)
        data_dir, run = os.path.join(base, "voc"), os.path.join(base, "run")
        log = os.path.join(args.work_dir, f"{domain}_ratio.log")
        if not os.path.isfile(os.path.join(data_dir, "synthetic.json")):
            generate_domain(domain, data_dir)
        common = [f"--strong_classes={','.join(strong_classes(domain))}", *extra]
        lnet_flags = [f for f in common if not f.startswith(("--d_", "--lambda", "--discriminator"))]
        trainer(log, args.flagfile, data_dir, run, "--stages=data,lnet",
                *recorded_lnet_flags(run), *lnet_flags)
        trainer(log, args.flagfile, data_dir, run, "--stages=transfer", *lnet_flags)
        rows = {}
        for seed in seeds:
            full = os.path.join(base, f"full_s{seed}")
            trainer(log, args.flagfile, data_dir, full, "--mode=full",
                    "--stages=data,pnet,eval", f"--seed={seed}", *lnet_flags)
            baseline = os.path.join(full, "eval", "results.json")
            rows.setdefault("full", []).append(results(full))
            for design in args.designs.split(","):
                name = design + args.tag
                target = os.path.join(base, f"ts3_{name}_s{seed}")
                if not os.path.exists(target):
                    shutil.copytree(run, target, ignore=shutil.ignore_patterns("pnet", "eval"))
                flags = ["--lambda_adv=0"] if design == "none" else [f"--discriminator={design}"]
                trainer(log, args.flagfile, data_dir, target, "--stages=pnet,eval",
                        f"--seed={seed}", f"--baseline_results={baseline}", *flags, *common)
                result = results(target)
                result["pnet_weak_train"], result["pseudo_weak_train"] = weak_training_quality(
                    target, data_dir)
                rows.setdefault(name, []).append(result)
        table[domain] = {
            name: {"miou_weak": [r["miou_weak"] for r in runs],
                   "miou_strong": [r["miou_strong"] for r in runs],
                   "ratio_weak": [r.get("ratio_to_baseline", {}).get("miou_weak", 1.0)
                                  for r in runs],
                   "pnet_weak_train": [r.get("pnet_weak_train") for r in runs],
                   "pseudo_weak_train": [r.get("pseudo_weak_train") for r in runs]}
            for name, runs in rows.items()}
        print(domain, json.dumps(table[domain]), flush=True)
        write_json(report, table)

    mean = lambda values: float(np.mean([v for v in values if v is not None]))  # noqa: E731
    print(f"\n{'domain':<8} {'run':<9} {'weak':>6} {'strong':>6} {'ratio weak':>10} "
          f"{'P-Net on weak train':>19} {'pseudo-labels':>13}   (mean over seeds)")
    for domain, rows in table.items():
        for name, r in rows.items():
            train = "" if name == "full" else f"{mean(r['pnet_weak_train']):19.3f} " \
                                              f"{mean(r['pseudo_weak_train']):13.3f}"
            print(f"{domain:<8} {name:<9} {mean(r['miou_weak']):6.3f} {mean(r['miou_strong']):6.3f} "
                  f"{mean(r['ratio_weak']):10.3f} {train}")


if __name__ == "__main__":
    main()
