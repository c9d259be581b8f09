"""The training split of a run, read once: class names, class split, records and pools."""

import dataclasses
from typing import Tuple

from tss_keras.data.class_names import load_class_names
from tss_keras.data.pools import ClassSplit, Pools, build_pools, parse_strong_classes
from tss_keras.data.voc import VocRecord, load_split


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """What the training stages read from ``--data_dir``'s training split."""

    class_names: Tuple[str, ...]
    class_split: ClassSplit
    records: Tuple[VocRecord, ...]
    pools: Pools

    @property
    def num_classes(self):
        return len(self.class_names)


def load_training_set(data_config, verbose=True):
    """Reads the training split named by a ``DataConfig`` and splits it into pools.

    With ``skip_bad`` bad files are skipped and the first is reported.
    """
    class_names = load_class_names(data_config.class_names_file)
    class_split = parse_strong_classes(data_config.strong_classes, class_names)
    records, bad = load_split(data_config.data_dir, data_config.train_split, class_names,
                              skip_bad=data_config.skip_bad)
    if bad and verbose:
        print(f"Skipped {len(bad)} bad files in {data_config.train_split} (--skip_bad); first: "
              f"{bad[0]['file']}: {bad[0]['error']}")
    return TrainingSet(class_names, class_split, tuple(records), build_pools(records, class_split))
