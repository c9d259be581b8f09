"""The ``data`` stage: writes the embedded set if asked, checks the split, writes data_summary.json."""

import os

from tss_keras.data import synthetic
from tss_keras.data.class_names import load_class_names
from tss_keras.data.inspect import inspect_split
from tss_keras.files import write_json
from tss_keras.stages.base import Stage

DATA_SETTINGS = ("data_dir", "class_names_file", "train_split", "strong_classes",
                 "agnostic_data_dir", "synthetic_data", "skip_bad")


def planned_class_names(config):
    """The run's class names, also before the data stage has written the embedded set."""
    data = config.data
    if data.synthetic_data and not os.path.isfile(data.class_names_file):
        return synthetic.class_names("main")
    return load_class_names(data.class_names_file)


class DataStage(Stage):
    """Counts images, classes and pools of the training split (every file is decoded)."""

    name = "data"
    settings = DATA_SETTINGS

    def output(self, layout):
        return layout.data_summary

    def run(self, context):
        config, layout = context.config, context.layout
        if not context.cluster.is_chief:
            return self.output(layout)
        data = config.data
        if data.synthetic_data:
            for directory, category_set in ((data.data_dir, "main"),
                                            (data.agnostic_data_dir, "agnostic")):
                if directory and synthetic.ensure(directory, category_set, seed=config.train.seed):
                    print(f"Wrote the embedded {category_set} data set to {directory}")
        summary = inspect_split(data.data_dir, data.train_split,
                                load_class_names(data.class_names_file), data.strong_classes,
                                skip_bad=data.skip_bad)
        path = write_json(layout.data_summary, summary)
        print(f"Data: {summary['num_images']} images, strong pool {summary['strong_pool']}, "
              f"weak pool {summary['weak_pool']} -> {path}")
        return path
