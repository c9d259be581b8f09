"""results.json: per-class IoU, mIoU (all, strong, weak), pixel accuracy, ratio to a baseline."""

import json
import math
import os

import numpy as np

from tss_keras.errors import DataError
from tss_keras.evaluation.confusion import iou_per_class, mean_iou


def build_results(confusion, class_names, class_split, num_images):
    """The results dict (VOC convention: mIoU over non-null classes, background included).

    ``miou_strong`` and ``miou_weak`` average the strong or weak classes
    (background excluded); they are null when the group is empty.
    """
    iou = iou_per_class(confusion)
    total = confusion.sum()
    return {
        "miou": mean_iou(confusion),
        "miou_strong": mean_iou(confusion, class_split.strong) if class_split.strong else None,
        "miou_weak": mean_iou(confusion, class_split.weak) if class_split.weak else None,
        "pixel_accuracy": float(np.trace(confusion) / total) if total else None,
        "per_class_iou": {name: (None if math.isnan(v) else float(v))
                          for name, v in zip(class_names, iou)},
        "num_images": int(num_images),
        "class_names": list(class_names),
        "strong_classes": [class_names[i] for i in sorted(class_split.strong)],
    }


def read_baseline(baseline_path, class_names):
    """Reads a baseline results.json and checks that its class list is ``class_names``."""
    try:
        with open(baseline_path, encoding="utf-8") as f:
            baseline = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{baseline_path}: --baseline_results file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{baseline_path}: --baseline_results is not a results.json ({e})") from None
    if baseline.get("class_names") != list(class_names):
        raise DataError(f"{baseline_path}: --baseline_results has another class list "
                        f"({baseline.get('class_names')})")
    return baseline


def add_baseline_ratio(results, baseline_path):
    """Adds ``ratio_to_baseline`` from another run's results.json (same class list).

    When both results record their training (``training``: steps and images
    per step), they must match: a ratio between runs that saw different
    amounts of data says nothing about transfer.
    """
    baseline = read_baseline(baseline_path, results["class_names"])
    ours, theirs = results.get("training"), baseline.get("training")
    if ours and theirs:
        keys = ("steps", "images_per_step")
        if any(ours.get(k) != theirs.get(k) for k in keys):
            raise DataError(
                f"{baseline_path}: --baseline_results is not comparable: it trained "
                f"{theirs.get('steps')} steps x {theirs.get('images_per_step')} images, this run "
                f"{ours.get('steps')} x {ours.get('images_per_step')} (use the same --pnet_steps "
                f"and --batch_size)")

    def ratio(key):
        if results.get(key) is None or not baseline.get(key):
            return None
        return results[key] / baseline[key]

    results["ratio_to_baseline"] = {k: ratio(k) for k in ("miou", "miou_strong", "miou_weak")}
    results["baseline_results"] = os.path.abspath(baseline_path)
    return results


def format_table(results):
    """A plain-text table of per-class IoU and the summary numbers."""
    strong = set(results["strong_classes"])
    lines = [f"{'class':<16} {'group':<7} {'IoU':>7}"]
    for i, (name, value) in enumerate(results["per_class_iou"].items()):
        group = "-" if i == 0 else ("strong" if name in strong else "weak")
        lines.append(f"{name:<16} {group:<7} {'null' if value is None else f'{value:7.4f}':>7}")
    fmt = lambda v: "null" if v is None else f"{v:.4f}"  # noqa: E731
    lines.append(f"mIoU {fmt(results['miou'])}  strong {fmt(results['miou_strong'])}  "
                 f"weak {fmt(results['miou_weak'])}  pixel acc {fmt(results['pixel_accuracy'])}  "
                 f"({results['num_images']} images)")
    if "ratio_to_baseline" in results:
        r = results["ratio_to_baseline"]
        lines.append(f"ratio to baseline: mIoU {fmt(r['miou'])}  strong {fmt(r['miou_strong'])}  "
                     f"weak {fmt(r['miou_weak'])}")
    return "\n".join(lines)
