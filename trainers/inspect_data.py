"""Prints one JSON object describing a VOC-layout split.

python -m trainers.inspect_data --data_dir=D --split=S [--strong_classes=...]
    [--class_names_file=F] [--skip_bad]
"""

import json

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)

from tss_keras.config_flags import define_flags
from trainers.cli import run_main

define_flags(flags.FLAGS, names={"data_dir", "strong_classes", "class_names_file", "skip_bad"})
flags.DEFINE_string("split", "train", "Split name: ImageSets/Segmentation/<split>.txt.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.data_dir:
        from tss_keras.errors import UsageError
        raise UsageError("--data_dir: this flag is required")
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.inspect import inspect_split

    class_names = load_class_names(FLAGS.class_names_file)
    print(json.dumps(inspect_split(FLAGS.data_dir, FLAGS.split, class_names,
                                   FLAGS.strong_classes, FLAGS.skip_bad), indent=2))


if __name__ == "__main__":
    app.run(run_main(main))
