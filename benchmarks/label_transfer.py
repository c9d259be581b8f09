"""Label-transfer quality per data domain: agnostic IoU, classifier mAP, pseudo-label mIoU.

python benchmarks/label_transfer.py [--work_dir=/tmp/tss_label_transfer] [--domains=all]
    [--flagfile=demo.flags] [extra trainers.run flags, e.g. --lnet_steps=1500]

For every domain of tss_keras.data.domains: writes the set (seeded), trains an
L-Net with the documented command (`trainers.run --flagfile=... --stages=data,lnet`,
half the classes strong), then scores on the weak pool's training images
against their masks (read here only, for scoring; training never sees them):

  agnostic_iou      agnostic map > 0.5 vs any-class pixels
  prior_iou         the same for the trivial baseline: where the strong pool's masks
                    usually have foreground (a PositionPrior), not looking at the image
  classifier_map    mAP of the multi-label classifier on those images
  chance_map        the mAP of random scores there (each class's share of the images)
  cam_argmax        pseudo-labels from CAMs alone (background below 0.25 of the peak)
  no_diffusion      L-Net (agnostic map + CAMs), diffusion off
  diffusion         L-Net + self-diffusion with the default --diffusion_* values
  calibrated        L-Net + self-diffusion with the self-calibrated values (the default)

Each pseudo-label variant gives the weak-class mIoU with void pseudo-labels not
scored (miou), with void counted as background (miou_void_as_background) and
its coverage (share of labelled pixels given a class). Prints a table and
writes <work_dir>/label_transfer.json after each domain (domains measured by an
earlier call and not by this one stay in it).

python benchmarks/label_transfer.py --timing [--backbones=resnet50,resnet101] [--sizes=321,513]

instead times label transfer with real backbones (weights=None; the features
have the real width and join colour in the affinity, --diffusion_features=both):
per image, the L-Net forward pass and the diffusion (grid scores and the
pseudo-label at the image's size), the extra peak memory
of the diffusion over the forward pass, and the time from a loaded L-Net to
the first pseudo-label (tracing included). Each case runs in a fresh process.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the report keeps of self-calibration's report (tss_keras.transfer.calibration).
CALIBRATION_KEYS = ("images", "chosen", "miou_void_as_background", "coverage", "win_share",
                    "configured")
sys.path.insert(0, ROOT)


def train_lnet(work_dir, domain, flagfile, extra):
    """Generates the domain and trains its L-Net through trainers.run; returns (data_dir, model_dir)."""
    from tss_keras.data.domains import generate_domain, strong_classes

    data_dir = os.path.join(work_dir, domain, "voc")
    model_dir = os.path.join(work_dir, domain, "run")
    if not os.path.isfile(os.path.join(data_dir, "synthetic.json")):
        generate_domain(domain, data_dir)
    command = [sys.executable, "-m", "trainers.run", f"--flagfile={flagfile}",
               f"--data_dir={data_dir}", f"--class_names_file={data_dir}/class_names.txt",
               f"--model_dir={model_dir}", f"--strong_classes={','.join(strong_classes(domain))}",
               "--nosynthetic_data", "--stages=data,lnet", *extra]
    print("+", " ".join(command), flush=True)
    with open(os.path.join(work_dir, f"{domain}.log"), "a") as log:
        subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return data_dir, model_dir


def score_domain(data_dir, model_dir):
    """The benchmark's numbers for one trained domain."""
    from tss_keras.config import RunConfig
    from tss_keras.data.training_set import load_training_set
    from tss_keras.layout import RunLayout
    from tss_keras.stages.transfer import read_ids
    from tss_keras.transfer.calibration import calibrate
    from tss_keras.transfer.evaluate import CAM_ARGMAX, evaluate_label_transfer, fit_position_prior
    from tss_keras.transfer.label_transfer import load_label_transfer

    config = RunConfig.read(model_dir)
    layout = RunLayout(model_dir)
    training_set = load_training_set(config.data, verbose=False)
    num_classes = training_set.num_classes
    diffusion = config.diffusion
    held_out = set(read_ids(layout.calibration_ids))
    transfer = load_label_transfer(layout, config, training_set, held_out)
    calibration_records = [r for r in training_set.records if r.image_id in held_out]
    calibrated, report = diffusion.params(), dict.fromkeys(CALIBRATION_KEYS)
    report["images"] = 0
    if calibration_records:
        calibrated, report = calibrate(transfer, calibration_records, num_classes, calibrated)
    weak_ids = {e.image_id for e in training_set.pools.weak}
    weak_records = [r for r in training_set.records if r.image_id in weak_ids]
    variants = {"cam_argmax": CAM_ARGMAX,
                "no_diffusion": dataclasses.replace(diffusion.params(), iterations=0),
                "diffusion": diffusion.params(), "calibrated": calibrated}
    prior = fit_position_prior(list(training_set.pools.strong), num_classes)
    result = evaluate_label_transfer(transfer, weak_records, num_classes, variants,
                                     sorted(training_set.class_split.weak), prior)
    result.update(num_weak_images=len(weak_records),
                  calibration={k: report[k] for k in CALIBRATION_KEYS})
    return result


def _rss_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def time_case(backbone, size, repeats=5):
    """One timing case, in this process: {forward_s, diffusion_s, ratio, memory, first label}."""
    import time

    import numpy as np

    from tss_keras.config import DiffusionConfig
    from tss_keras.models import build_encoder, build_lnet
    from tss_keras.transfer.label_transfer import LabelTransfer

    lnet = build_lnet(build_encoder(backbone, 16), 21)
    # The L-Net's features in the affinity (next to colour), the costly case; the default
    # (colour only) costs less.
    config = DiffusionConfig(diffusion_features="both")
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    labels = np.zeros((1, 20), np.float32)
    labels[0, [3, 11]] = 1
    start = time.perf_counter()
    transfer = LabelTransfer.from_config(lnet, 21, config, size)
    transfer.labels(transfer.view([image]), labels, [(size, size)])
    first_label = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        view = transfer.view([image])
        view.foreground.numpy()
    forward = (time.perf_counter() - start) / repeats
    before = _rss_kb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:  # resets the peak (VmHWM) to the current RSS
        f.write("5")
    start = time.perf_counter()
    for _ in range(repeats):
        transfer.labels(view, labels, [(size, size)])
    diffusion = (time.perf_counter() - start) / repeats
    extra_mb = (_rss_kb("VmHWM:") - before) / 1024
    return {"backbone": backbone, "size": size,
            "feature_channels": int(view.features.shape[-1]),
            "lnet_forward_s": forward, "diffusion_s": diffusion,
            "diffusion_over_forward": diffusion / forward,
            "diffusion_extra_peak_mb": extra_mb, "first_pseudo_label_s": first_label}


def timing(backbones, sizes):
    """Runs every case in a fresh process and prints a table."""
    rows = []
    for backbone in backbones:
        for size in sizes:
            code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); "
                    f"from benchmarks.label_transfer import time_case; "
                    f"print('RESULT', json.dumps(time_case({backbone!r}, {size})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
            if line is None:
                raise RuntimeError(out.stderr[-3000:])
            rows.append(json.loads(line[len("RESULT "):]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'backbone':<10} {'size':>5} {'C':>5} {'forward s':>9} {'diffusion s':>11} "
          f"{'ratio':>6} {'extra MB':>8} {'first label s':>13}")
    for r in rows:
        print(f"{r['backbone']:<10} {r['size']:5d} {r['feature_channels']:5d} "
              f"{r['lnet_forward_s']:9.3f} {r['diffusion_s']:11.3f} "
              f"{r['diffusion_over_forward']:6.2f} {r['diffusion_extra_peak_mb']:8.0f} "
              f"{r['first_pseudo_label_s']:13.1f}")
    return rows


def _cell(scores):
    return f"{scores['miou_void_as_background']:.3f} ({scores['coverage']:.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default="/tmp/tss_label_transfer")
    parser.add_argument("--domains", default="all")
    parser.add_argument("--flagfile", default=os.path.join(ROOT, "demo.flags"))
    parser.add_argument("--timing", action="store_true", help="time real backbones instead")
    parser.add_argument("--backbones", default="resnet50,resnet101")
    parser.add_argument("--sizes", default="321,513")
    args, extra = parser.parse_known_args()
    if args.timing:
        timing(args.backbones.split(","), [int(s) for s in args.sizes.split(",")])
        return
    from benchmarks.reports import other_domains
    from tss_keras.data.domains import DOMAIN_NAMES
    from tss_keras.files import write_json

    domains = DOMAIN_NAMES if args.domains == "all" else tuple(args.domains.split(","))
    report = os.path.join(args.work_dir, "label_transfer.json")
    results = other_domains(report, domains)
    for domain in domains:
        data_dir, model_dir = train_lnet(args.work_dir, domain, args.flagfile, extra)
        results[domain] = score_domain(data_dir, model_dir)
        print(domain, json.dumps(results[domain]), flush=True)
        write_json(report, results)  # after each domain: an hour's work survives a crash
    print("\nweak-class mIoU, void counted as background (coverage)")
    print(f"{'domain':<8} {'agnostic':>8} {'prior':>6} {'cls mAP':>7} {'chance':>6}  "
          f"{'CAM argmax':>13} "
          f"{'no diffusion':>13} {'diffusion':>13} {'calibrated':>13}")
    for domain, r in results.items():
        print(f"{domain:<8} {r['agnostic_iou']:8.3f} {r['prior_iou']:6.3f} "
              f"{r['classifier_map']:7.3f} {r['chance_map']:6.3f}  "
              f"{_cell(r['cam_argmax']):>13} {_cell(r['no_diffusion']):>13} "
              f"{_cell(r['diffusion']):>13} {_cell(r['calibrated']):>13}")


if __name__ == "__main__":
    main()
