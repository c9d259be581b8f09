"""Segments images with an exported model.

python -m trainers.segment --model=PATH --input=IMAGE_OR_DIR --output_dir=D [--skip_bad]

PATH: a SavedModel version folder, a .keras P-Net or a .tflite file. Writes
<name>.png (VOC palette mask, at the image's size) and <name>_overlay.jpg
(image | overlay). A TFLite model has a fixed input size: images are resized
to it and masks back to each image's size.
"""

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from trainers.cli import run_main

flags.DEFINE_string("model", None, "SavedModel version folder, .keras or .tflite file.")
flags.DEFINE_string("input", None, "An image file or a folder of images.")
flags.DEFINE_string("output_dir", None, "Where masks and overlays go.")
flags.DEFINE_bool("skip_bad", False, "Skip unreadable images (listed at the end) instead of "
                                    "stopping at the first.")
flags.mark_flags_as_required(["model", "input", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tss_keras.inference import Predictor
    from tss_keras.inference import list_images, segment

    list_images(FLAGS.input)  # bad input fails before the model loads
    predictor = Predictor(FLAGS.model)
    if predictor.note:
        print(f"note: {predictor.note}")
    written, skipped = segment(predictor, FLAGS.input, FLAGS.output_dir,
                               skip_bad=FLAGS.skip_bad)
    print(f"Wrote {len(written)} masks and overlays to {FLAGS.output_dir}")
    for item in skipped:
        print(f"skipped {item['file']}: {item['error']}")


if __name__ == "__main__":
    app.run(run_main(main))
