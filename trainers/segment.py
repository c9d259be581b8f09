"""Segments images with an exported model.

python -m trainers.segment --model=PATH --input=IMAGE_OR_DIR --output_dir=D

PATH: a SavedModel version folder, a .keras P-Net or a .tflite file. Writes
<name>.png (VOC palette mask) and <name>_overlay.jpg (image | overlay).
"""

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from trainers.cli import run_main

flags.DEFINE_string("model", None, "SavedModel version folder, .keras or .tflite file.")
flags.DEFINE_string("input", None, "An image file or a folder of images.")
flags.DEFINE_string("output_dir", None, "Where masks and overlays go.")
flags.mark_flags_as_required(["model", "input", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tss_keras.inference import Predictor
    from tss_keras.inference import list_images, segment

    list_images(FLAGS.input)  # bad input fails before the model loads
    written = segment(Predictor(FLAGS.model), FLAGS.input, FLAGS.output_dir)
    print(f"Wrote {len(written)} masks and overlays to {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(run_main(main))
