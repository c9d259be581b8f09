"""The TS3 trainer: python -m trainers.run --flagfile=voc.flags

Stages (in order): data, lnet, transfer (and pnet, eval, export as they land).
"""

import dataclasses
import os

from absl import app, flags

import trainers.quiet  # noqa: F401  (imports TF before anything prints)
from tss_keras.errors import UsageError
from trainers.cli import parse_size, run_main
from trainers.quiet import device_setup

F = flags
F.DEFINE_string("data_dir", None, "VOC-layout root (JPEGImages/, SegmentationClass/, ImageSets/).")
F.DEFINE_string("model_dir", None, "Where checkpoints, pseudo-labels, logs and results go.")
F.DEFINE_string("class_names_file", None, "One class name per line (line = class id); default VOC.")
F.DEFINE_string("train_split", "train", "Training split (ImageSets/Segmentation/<split>.txt).")
F.DEFINE_string("eval_split", "val", "Evaluation split.")
F.DEFINE_string("strong_classes", "all", "Classes with masks: names or ids, comma-separated, 'all' or 'none'.")
F.DEFINE_string("agnostic_data_dir", None, "VOC-layout set of other classes, the class-agnostic mask source (0 % setting).")
F.DEFINE_bool("synthetic_data", False, "Write the embedded synthetic set into --data_dir (and --agnostic_data_dir) if absent.")
F.DEFINE_bool("skip_bad", False, "Skip unreadable or inconsistent files instead of stopping.")
F.DEFINE_string("backbone", "resnet50", "vgg16, resnet50, resnet101, mobilenetv2 or tiny.")
F.DEFINE_integer("output_stride", 16, "Encoder output stride: 8 or 16.")
F.DEFINE_string("weights", None, "Backbone weights: empty (random), 'imagenet' (downloads) or a file path.")
F.DEFINE_list("crop_size", ["321", "321"], "Training crop: H,W (or one number).")
F.DEFINE_integer("batch_size", 8, "Global batch size of each stream (strong and weak).")
F.DEFINE_float("min_scale", 0.5, "Smallest random scale.")
F.DEFINE_float("max_scale", 2.0, "Largest random scale.")
F.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "sgd (momentum 0.9) or adam (AdamW), poly decay.")
F.DEFINE_integer("lnet_steps", 10000, "L-Net training steps.")
F.DEFINE_float("lnet_lr", 1e-3, "L-Net learning rate.")
F.DEFINE_integer("pnet_steps", 20000, "P-Net training steps.")
F.DEFINE_float("pnet_lr", 2.5e-4, "P-Net learning rate.")
F.DEFINE_float("d_lr", 1e-4, "Discriminator learning rate.")
F.DEFINE_float("weight_decay", 1e-4, "Weight decay.")
F.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (one progress-bar epoch).")
F.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker"], "tf.distribute strategy.")
F.DEFINE_integer("num_gpus", None, "Use the first N GPUs (default: all).")
F.DEFINE_integer("cpu_replicas", 0, "Split the CPU into N logical devices and mirror over them.")
F.DEFINE_integer("seed", 0, "Random seed.")
F.DEFINE_list("stages", ["data", "lnet", "transfer", "pnet", "eval"], "Stages to run, in pipeline order.")
F.DEFINE_bool("overwrite", False, "Redo stages that are finished already.")
F.DEFINE_enum("mode", "ts3", ["ts3", "full"], "ts3 (transfer) or full (supervised baseline on all masks).")
F.DEFINE_float("lambda_adv", 0.01, "Weight of the adversarial loss on weak predictions (0: off).")
F.DEFINE_float("weak_weight", 1.0, "Weight of the pseudo-label cross-entropy.")
F.DEFINE_float("lambda_semi", 0.0, "Weight of self-training on discriminator-confident weak pixels (0: off).")
F.DEFINE_float("semi_threshold", 0.2, "Discriminator confidence for self-training pixels.")
F.DEFINE_integer("d_filters", 64, "Discriminator width (first layer channels).")
F.DEFINE_bool("d_with_image", False, "Condition the discriminator on the image.")
F.DEFINE_bool("d_shuffle_classes", True, "Permute foreground channels before the discriminator, so it cannot tell weak classes by their channel.")
F.DEFINE_integer("aspp_filters", 256, "ASPP channels.")
F.DEFINE_list("aspp_rates", ["6", "12", "18"], "ASPP dilation rates.")
F.DEFINE_enum("pnet_init", "backbone", ["backbone", "lnet"], "P-Net encoder start: --weights, or the trained L-Net's encoder.")
F.DEFINE_bool("sync_bn", False, "Synchronise batch norm across replicas.")
F.DEFINE_bool("mixed_precision", False, "mixed_float16 compute with loss scaling (both optimizers).")
F.DEFINE_bool("xla", False, "Compile the train step with XLA.")
F.DEFINE_bool("eval_flip", False, "Average predictions with the flipped image.")
F.DEFINE_list("eval_scales", ["1.0"], "Input scales averaged at evaluation.")
F.DEFINE_string("baseline_results", None, "results.json of a --mode=full run: adds ratio_to_baseline.")
F.DEFINE_string("export_dir", None, "export stage: TF Serving base path (default <model_dir>/export).")
F.DEFINE_string("model_name", "ts3", "export stage: TF Serving model name.")
F.DEFINE_list("export_formats", ["saved_model", "tflite", "keras"], "export stage: artifacts to write.")
F.DEFINE_list("tflite_quantization", ["none", "fp16", "int8"], "export stage: TFLite variants.")
F.DEFINE_integer("diffusion_radius", 7, "Self-diffusion neighbourhood radius (working-grid pixels).")
F.DEFINE_integer("diffusion_iterations", 20, "Self-diffusion iterations (0 switches diffusion off).")
F.DEFINE_float("diffusion_color_scale", 20.0, "Colour affinity scale (RGB 0..255 units).")
F.DEFINE_float("diffusion_feature_scale", 0.5, "Feature affinity scale (unit-normalised L-Net features).")
F.DEFINE_enum("diffusion_features", "both", ["color", "features", "both"], "Affinity guides.")
F.DEFINE_integer("diffusion_stride", 4, "Working resolution: image size / this.")
F.DEFINE_float("diffusion_confidence", 0.6, "Pixels whose winning score is lower become void.")
F.DEFINE_float("diffusion_cam_power", 1.0, "Exponent on normalised CAMs before diffusion.")
F.DEFINE_float("diffusion_cam_weight", 1.0, "How much CAM evidence adds to the agnostic foreground (0: agnostic map alone).")
F.mark_flags_as_required(["data_dir", "model_dir"])
FLAGS = F.FLAGS


def _numbers(name, kind):
    try:
        return tuple(kind(v) for v in FLAGS[name].value)
    except ValueError:
        raise UsageError(f"--{name}: {','.join(FLAGS[name].value)} is not a list of numbers") from None


def config_from_flags():
    """Builds the library's RunConfig from the parsed flags."""
    from tss_keras.config import DiffusionConfig, RunConfig

    diffusion = DiffusionConfig(
        radius=FLAGS.diffusion_radius, iterations=FLAGS.diffusion_iterations,
        color_scale=FLAGS.diffusion_color_scale, feature_scale=FLAGS.diffusion_feature_scale,
        feature_source=FLAGS.diffusion_features, working_stride=FLAGS.diffusion_stride,
        confidence=FLAGS.diffusion_confidence, cam_power=FLAGS.diffusion_cam_power,
        cam_weight=FLAGS.diffusion_cam_weight)
    parsed = {"diffusion": diffusion, "crop_size": parse_size("crop_size", FLAGS.crop_size),
              "stages": tuple(FLAGS.stages), "export_formats": tuple(FLAGS.export_formats),
              "tflite_quantization": tuple(FLAGS.tflite_quantization),
              "aspp_rates": _numbers("aspp_rates", int), "eval_scales": _numbers("eval_scales", float)}
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(RunConfig)
              if f.name not in parsed}
    return RunConfig(**parsed, **values)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]} (flags are --name=value)")
    config = config_from_flags()
    from tss_keras.training.distribute import make_strategy

    # The strategy first: splitting the CPU must happen before TF starts.
    with device_setup():
        strategy = make_strategy(config.strategy, config.num_gpus, config.cpu_replicas)
    from tss_keras.training.runner import run_stages

    os.makedirs(config.model_dir, exist_ok=True)
    FLAGS.append_flags_into_file(os.path.join(config.model_dir, "flags.txt"))
    outputs = run_stages(config, strategy)
    print("Results and artifacts:")
    for stage, path in outputs.items():
        print(f"  {stage}: {path}")


if __name__ == "__main__":
    app.run(run_main(main))
