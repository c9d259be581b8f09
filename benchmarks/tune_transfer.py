"""Leave-one-domain-out tuning of label transfer over trained domain runs.

python benchmarks/tune_transfer.py --work_dir=/tmp/tss_label_transfer [--images=60]
    [--search=random --trials=120 | --search=neighbourhood --centre=presence
     | --search=grid --grid=cam_weight,color_model] [--seed=0]

Reads the L-Nets that benchmarks/label_transfer.py trained (one per domain
under --work_dir), computes each weak image's L-Net view once, then scores
settings of the diffusion parameters on every domain, at the L-Net's
canonical image size (the final numbers come from
benchmarks/label_transfer.py, at each image's own size). The settings are
random draws from the search space below, or (``--search=neighbourhood``)
the defaults and every setting that changes one parameter of them, repeated
around each value of the ``--centre`` parameter (one added since the
defaults were chosen), or (``--search=grid``) every combination of the
``--grid`` parameters' values, the rest at their defaults; each list is fixed before any score is seen, so a
left-out domain never shapes it. For each left-out domain it picks the
setting with the best mean score over the other domains and reports its
score on the left-out one; it also reports the setting best over all
domains (the candidate default), and what self-calibration picks per domain
from its own held-out strong images. Scores: weak-class mIoU with void
pseudo-labels counted as background, and coverage. Writes <work_dir>/tune_transfer.json.
"""

import argparse
import dataclasses
import itertools
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPACE = {
    "iterations": (0, 5, 10, 20, 40),
    "radius": (1, 2, 3, 5),
    "anchor": (0.0, 0.05, 0.2, 0.5),
    "color_scale": (0.5, 1.0, 2.0, 4.0),
    "feature_scale": (0.5, 1.0, 2.0, 4.0),
    "features": ("color", "features", "both"),
    "cam_weight": (0.0, 0.25, 0.5, 0.75, 1.0),
    "cam_power": (1.0, 2.0),
    "cam_floor": (0.0, 0.5, 0.75, 0.9),
    "prototype_weight": (0.0, 0.5, 0.8, 1.0),
    "presence": (0.0, 0.5, 1.0),
    "class_presence": (0.0, 0.5, 1.0),
    "presence_on": ("agnostic", "evidence"),
    "color_model": (0.0, 0.25, 0.5, 0.75, 1.0),
    "saliency": (0.0, 0.25, 0.5, 0.75, 1.0),
    "confidence": (0.3, 0.4, 0.5, 0.6),
}
MIN_COVERAGE = 0.85


def load_domain(work_dir, domain, images, rng):
    """(transfer, weak items, calibration records, weak class ids, num classes) of one domain."""
    import tensorflow as tf

    from tss_keras.config import RunConfig
    from tss_keras.data.pipeline import multi_hot
    from tss_keras.data.training_set import load_training_set
    from tss_keras.data.voc import read_image, read_mask
    from tss_keras.layout import RunLayout
    from tss_keras.stages.transfer import read_ids
    from tss_keras.transfer.label_transfer import load_label_transfer

    model_dir = os.path.join(work_dir, domain, "run")
    config = RunConfig.read(model_dir)
    layout = RunLayout(model_dir)
    training_set = load_training_set(config.data, verbose=False)
    k = training_set.num_classes
    held_out = set(read_ids(layout.calibration_ids))
    transfer = load_label_transfer(layout, config, training_set, held_out)
    weak_ids = {e.image_id for e in training_set.pools.weak}
    weak = [r for r in training_set.records if r.image_id in weak_ids]
    weak = [weak[i] for i in sorted(rng.choice(len(weak), min(images, len(weak)), replace=False))]
    items = []
    for record in weak:  # scored at the L-Net's canonical size (as calibration does), for speed
        view = transfer.view([read_image(record.image_path)])
        size = view.images.shape[1:3]
        truth = tf.image.resize(read_mask(record.mask_path, k)[..., None], size,
                                method="nearest").numpy()[..., 0]
        items.append((view, multi_hot(record.labels, k)[None], truth))
    calibration = [r for r in training_set.records if r.image_id in held_out]
    return transfer, items, calibration, sorted(training_set.class_split.weak), k


def neighbourhood_trials(default, centre):
    """The defaults and every one-parameter change of them, around each value of ``centre``."""
    trials = []
    for value in SPACE[centre]:
        base = dataclasses.replace(default, **{centre: value})
        trials.append(base)
        for name, values in SPACE.items():
            if name != centre:
                trials += [dataclasses.replace(base, **{name: v}) for v in values
                           if v != getattr(base, name)]
    return list(dict.fromkeys(trials))  # DiffusionParams is frozen, so hashable


def grid_trials(default, names):
    """Every combination of the named parameters' values in SPACE, the rest at their defaults."""
    combos = itertools.product(*(SPACE[name] for name in names))
    return list(dict.fromkeys(dataclasses.replace(default, **dict(zip(names, values)))
                              for values in combos))


def random_trials(default, count, rng):
    """The defaults, the defaults without diffusion, and random draws from SPACE: ``count`` in all."""
    trials = [default, dataclasses.replace(default, iterations=0)]
    while len(trials) < count:
        choice = {k: values[rng.integers(len(values))] for k, values in SPACE.items()}
        trials.append(dataclasses.replace(default, **choice))
    return trials


def score(domain_data, params):
    """{miou_void_as_background, coverage, miou} of one setting on one domain's weak items."""
    from tss_keras.transfer.evaluate import PseudoLabelScore

    transfer, items, _, weak_classes, k = domain_data
    total = PseudoLabelScore(k)
    for view, labels, truth in items:
        total.add(transfer.labels(view, labels, [truth.shape], params)[0], truth)
    return total.summary(weak_classes)


def objective(result):
    """Void-as-background mIoU, with settings under the coverage floor ranked below all others."""
    value = result["miou_void_as_background"] or 0.0
    return value if (result["coverage"] or 0) >= MIN_COVERAGE else value - 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--domains", default="all")
    parser.add_argument("--images", type=int, default=60, help="weak images per domain")
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search", choices=("random", "neighbourhood", "grid"), default="random")
    parser.add_argument("--centre", default="presence", choices=sorted(SPACE),
                        help="with --search=neighbourhood: the parameter whose every value "
                             "gets its own neighbourhood")
    parser.add_argument("--grid", default="cam_weight,color_model",
                        help="with --search=grid: comma-separated parameters of SPACE")
    args = parser.parse_args()
    unknown = set(args.grid.split(",")) - set(SPACE)
    if args.search == "grid" and unknown:
        parser.error(f"--grid: {', '.join(sorted(unknown))} not in {', '.join(SPACE)}")

    from tss_keras.config import DiffusionConfig
    from tss_keras.data.domains import DOMAIN_NAMES
    from tss_keras.transfer.calibration import calibrate

    rng = np.random.default_rng(args.seed)
    domains = DOMAIN_NAMES if args.domains == "all" else tuple(args.domains.split(","))
    data = {d: load_domain(args.work_dir, d, args.images, rng) for d in domains}
    default = DiffusionConfig().params()
    if args.search == "neighbourhood":
        trials = neighbourhood_trials(default, args.centre)
    elif args.search == "grid":
        trials = grid_trials(default, args.grid.split(","))
    else:
        trials = random_trials(default, args.trials, rng)
    table = []
    for i, params in enumerate(trials):
        row = {"params": dataclasses.asdict(params),
               "domains": {d: score(data[d], params) for d in domains}}
        table.append(row)
        print(i, json.dumps(row), flush=True)

    def mean_objective(row, names):
        return float(np.mean([objective(row["domains"][d]) for d in names]))

    report = {"left_out": {}, "trials": table}
    for held in domains:
        others = [d for d in domains if d != held]
        best = max(table, key=lambda row: mean_objective(row, others))
        report["left_out"][held] = {"chosen_on_others": best["params"],
                                    "score": best["domains"][held]}
    best_all = max(table, key=lambda row: mean_objective(row, domains))
    report["best_over_all"] = best_all
    report["calibrated"] = {}
    for domain, (transfer, _, calibration, _, k) in data.items():
        if calibration:
            chosen, _ = calibrate(transfer, calibration, k, default)
            report["calibrated"][domain] = {"params": dataclasses.asdict(chosen),
                                            "score": score(data[domain], chosen)}
    with open(os.path.join(args.work_dir, "tune_transfer.json"), "w") as f:
        json.dump(report, f, indent=2)
    print("\nleave-one-domain-out (weak mIoU void as background, coverage)")
    for domain, entry in report["left_out"].items():
        s = entry["score"]
        c = report["calibrated"].get(domain, {}).get("score", {})
        print(f"{domain:<8} lodo {s['miou_void_as_background']:.3f} ({s['coverage']:.2f})   "
              f"calibrated {c.get('miou_void_as_background', float('nan')):.3f}   "
              f"best-over-all {best_all['domains'][domain]['miou_void_as_background']:.3f}")
    print("best over all:", best_all["params"])


if __name__ == "__main__":
    main()
