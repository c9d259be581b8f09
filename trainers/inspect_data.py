"""Prints one JSON object describing a VOC-layout split.

python -m trainers.inspect_data --data_dir=D --split=S [--strong_classes=...]
    [--class_names_file=F] [--skip_bad]
"""

import json

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)

from trainers.cli import run_main

flags.DEFINE_string("data_dir", None, "VOC-layout root (contains JPEGImages/).")
flags.DEFINE_string("split", "train", "Split name: ImageSets/Segmentation/<split>.txt.")
flags.DEFINE_string("strong_classes", "all", "Strong classes: names or ids, 'all' or 'none'.")
flags.DEFINE_string("class_names_file", None, "One class name per line; default VOC's 21.")
flags.DEFINE_bool("skip_bad", False, "Skip bad files and list them in bad_files.")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tss_keras.data.class_names import load_class_names
    from tss_keras.data.inspect import inspect_split

    class_names = load_class_names(FLAGS.class_names_file)
    print(json.dumps(inspect_split(FLAGS.data_dir, FLAGS.split, class_names,
                                   FLAGS.strong_classes, FLAGS.skip_bad), indent=2))


if __name__ == "__main__":
    app.run(run_main(main))
