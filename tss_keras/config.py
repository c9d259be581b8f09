"""Every setting of a run, in typed dataclasses: the one home of each default and its help.

The command-line flags of ``trainers.run`` and ``export.run`` are generated
from these fields (``tss_keras.config_flags``); a flag's name is its field's
name. ``run_config.json`` in a run's model_dir is ``RunConfig.to_json()`` and
reads back with ``RunConfig.from_json()``.

Each field carries ``metadata``: ``help`` (the flag's help text), and
optionally ``choices`` (allowed values; for a list, allowed elements) and
``required`` (the flag must be given).
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

from tss_keras.errors import DataError, UsageError
from tss_keras.exporting.tflite import QUANTIZATIONS as TFLITE_QUANTIZATIONS
from tss_keras.models.encoder import BACKBONES, OUTPUT_STRIDES
from tss_keras.constants import MASK_VIEWS
from tss_keras.models.lnet import CAM_POOLINGS
from tss_keras.training.adversarial import DESIGNS, DOWNSAMPLINGS
from tss_keras.training.distribute import STRATEGIES
from tss_keras.transfer.diffusion import FEATURE_SOURCES, PRESENCE_TARGETS

STAGES = ("data", "lnet", "transfer", "pnet", "eval", "export")
EXPORT_FORMATS = ("saved_model", "tflite", "keras")

# Settings added after runs existed, with the value that reproduces what a stage made before
# the setting existed did (as in stages.json). Such a stage counts as made with this value; a
# setting missing from stages.json and not listed here counts as changed.
VALUES_BEFORE_THEY_EXISTED = {
    "transfer_flip": False,
    "transfer_scales": [1.0],
    "weak_ignores_strong": False,
    "lnet_head_channels": 128,
    "lnet_cam_pooling": "avg",
    "lnet_rounds": 1,
    "lnet_color_jitter": 0.0,
    "lnet_mask_view": "crop",
    "lnet_head_rates": [],
    "diffusion_color_model": 0.0,
    "diffusion_saliency": 0.0,
    "diffusion_cam_floor": 0.0,
    "diffusion_class_presence": 0.0,
    "diffusion_presence_on": "agnostic",
    "d_downsample_by": "average",
}


def setting(default, help, choices=None, required=False):  # noqa: A002 (absl's word)
    """A dataclass field with its flag help text (and allowed values)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "required": required})


@dataclasses.dataclass
class DataConfig:
    """Where the data is, which classes are strong, and how training images are cropped."""

    data_dir: str = setting("", "VOC-layout root (JPEGImages/, SegmentationClass/, ImageSets/).",
                            required=True)
    class_names_file: Optional[str] = setting(
        None, "One class name per line (line = class id); default VOC's 21.")
    train_split: str = setting("train", "Training split(s): the first of a comma-separated list "
                                        "that exists (ImageSets/Segmentation/<split>.txt).")
    eval_split: str = setting("val", "Evaluation split.")
    strong_classes: str = setting("all", "Classes with masks: names or ids, comma-separated, "
                                         "'all' or 'none'.")
    agnostic_data_dir: Optional[str] = setting(
        None, "VOC-layout set of other classes, the class-agnostic mask source (0 % setting).")
    synthetic_data: bool = setting(False, "Write the embedded synthetic set into --data_dir "
                                          "(and --agnostic_data_dir) if absent.")
    skip_bad: bool = setting(False, "Skip unreadable or inconsistent files instead of stopping.")
    crop_size: Tuple[int, int] = setting((321, 321), "Training crop: H,W (or one number).")
    batch_size: int = setting(8, "Global batch size of each stream (strong and weak).")
    min_scale: float = setting(0.5, "Smallest random scale of training images.")
    max_scale: float = setting(2.0, "Largest random scale of training images.")


@dataclasses.dataclass
class ModelConfig:
    """The shared encoder and the P-Net head."""

    backbone: str = setting("resnet50", "Encoder backbone.", choices=BACKBONES)
    output_stride: int = setting(16, "Encoder output stride: 8 or 16.", choices=OUTPUT_STRIDES)
    weights: Optional[str] = setting(
        None, "Backbone weights: empty (random), 'imagenet' (downloads) or a weights file path.")
    sync_bn: bool = setting(False, "Synchronise batch norm across replicas.")
    aspp_filters: int = setting(256, "ASPP channels of the P-Net head.")
    aspp_rates: Tuple[int, ...] = setting((6, 12, 18), "ASPP dilation rates.")


@dataclasses.dataclass
class TrainConfig:
    """What every training stage shares: optimizer family, checkpoints, precision, seed."""

    optimizer: str = setting("sgd", "sgd (momentum 0.9) or adam (AdamW); polynomial decay.",
                             choices=("sgd", "adam"))
    weight_decay: float = setting(1e-4, "Weight decay (decoupled: applied to the weights "
                                        "directly, for SGD and AdamW alike).")
    head_lr_multiplier: float = setting(
        1.0, "Layers outside the encoder learn this many times faster (DeepLab uses 10 for "
             "random heads on a pretrained backbone); SGD only.")
    checkpoint_every: int = setting(500, "Steps between checkpoints and progress lines.")
    mixed_precision: bool = setting(False, "mixed_float16 compute with loss scaling, in every "
                                           "stage that trains.")
    xla: bool = setting(False, "Compile the train steps with XLA.")
    seed: int = setting(0, "Random seed.")


@dataclasses.dataclass
class DistributeConfig:
    """How training is spread over devices and machines."""

    strategy: str = setting("auto", "tf.distribute strategy: auto (mirrored over several GPUs), "
                                    "default, mirrored, or multi_worker (from TF_CONFIG).",
                            choices=STRATEGIES)
    num_gpus: Optional[int] = setting(None, "Use the first N GPUs of each machine (default: all).")
    cpu_replicas: int = setting(0, "Split the CPU into N logical devices and mirror over them.")


@dataclasses.dataclass
class LNetConfig:
    """The L-Net stage."""

    lnet_steps: int = setting(10000, "L-Net training steps.")
    lnet_lr: float = setting(1e-3, "L-Net learning rate.")
    lnet_cam_pixel_weight: float = setting(
        1.0, "Weight of a per-pixel loss that strong masks give the CAM head (0: CAMs learn "
             "from image labels only).")
    lnet_presence_weight: float = setting(
        1.0, "Weight of a loss that teaches the agnostic head from image labels: in an image "
             "with a label, its most foreground-like 5 % of pixels are foreground (0: off).")
    lnet_head_channels: int = setting(128, "Hidden channels of the L-Net's agnostic head.")
    lnet_head_rates: Tuple[int, ...] = setting(
        (), "Empty: the agnostic head is one 3x3 convolution. Dilation rates (in encoder "
            "cells, e.g. 2,4,6): an ASPP head with image pooling, so it sees each region's "
            "surround.")
    lnet_cam_pooling: str = setting(
        "avg", "How the CAMs pool to the classifier's logits: avg (global average) or lse "
               "(log-sum-exp, between average and max).", choices=CAM_POOLINGS)
    lnet_image_size: int = setting(
        0, "Long side (pixels) every image is resized to for the L-Net's agnostic map, in "
           "training and in label transfer; 0: the median long side of the training images.")
    lnet_rounds: int = setting(
        1, "L-Net training rounds. Each round after the first trains a new L-Net whose "
           "agnostic head also learns the weak images' foreground from the previous round's "
           "pseudo-labels (made with the --diffusion_* values).")
    lnet_color_jitter: float = setting(
        0.0, "Strength (0 to 1) of random hue, saturation, brightness and contrast on the "
             "images that teach the agnostic head, so it cannot tell foreground by the strong "
             "classes' colours (0: off; 1: any hue).")
    lnet_mask_view: str = setting(
        "image", "What the agnostic head's training images show: image (crops of the canonical "
                 "image's size, so the head sees whole objects and their surround, as label "
                 "transfer shows it) or crop (random --crop_size crops, the earlier default).",
        choices=MASK_VIEWS)


@dataclasses.dataclass
class DiffusionConfig:
    """Label transfer: self-diffusion (tss_keras.transfer.diffusion) and its calibration.

    Distances are relative to the image: diffusion runs on a grid with
    ``diffusion_grid`` cells along the image's long side, and affinity scales
    are multiples of the image's own median distance between neighbouring
    cells. The defaults were chosen by leave-one-domain-out tuning over the
    domain suite (benchmarks/tune_transfer.py): with every domain left out,
    the others chose these values. See README ("Label transfer").
    """

    diffusion_grid: int = setting(64, "Cells along the long side of the diffusion grid.")
    diffusion_radius: int = setting(5, "Neighbourhood radius in grid cells.")
    diffusion_iterations: int = setting(10, "Random-walk steps (0 switches diffusion off).")
    diffusion_anchor: float = setting(
        0.05, "Restart probability of the walk at its seeds (0: pure random walk).")
    diffusion_color_scale: float = setting(
        2.0, "Colour affinity scale, in units of the image's median neighbour colour distance.")
    diffusion_feature_scale: float = setting(
        1.0, "Feature affinity scale, in units of the image's median neighbour feature "
             "distance.")
    diffusion_features: str = setting("color", "Affinity guides.", choices=FEATURE_SOURCES)
    diffusion_feature_dims: int = setting(
        8, "Principal components of the L-Net features used in the affinity.")
    diffusion_confidence: float = setting(
        0.3, "Pixels whose winning score is lower become void.")
    diffusion_cam_power: float = setting(1.0, "Exponent on normalised CAMs before diffusion.")
    diffusion_cam_floor: float = setting(
        0.0, "Share (0 to 1) of each CAM's cells, those that answer least, that give no class "
             "evidence: a CAM is normalised from this quantile to its peak (0: its minimum).")
    diffusion_cam_weight: float = setting(
        0.5, "How much CAM evidence adds to the agnostic foreground (0: agnostic map alone).")
    diffusion_prototype_weight: float = setting(
        1.0, "Share of class evidence from class prototypes (mean L-Net features) instead of "
             "CAMs, inside images with several labels (0: CAMs alone).")
    diffusion_presence: float = setting(
        1.0, "Rescale the agnostic map of a labelled image towards a peak of 1 (M / max(M) ** "
             "presence): the labels say an object is there (0: the map as it is).")
    diffusion_class_presence: float = setting(
        0.0, "Take the presence peak per labelled class too, over the foreground that class's "
             "evidence owns, so a weak object next to a confident one is lifted as well (0: one "
             "peak per image, 1: one per class).")
    diffusion_presence_on: str = setting(
        "evidence", "What the presence rescaling applies to: the agnostic map alone, or the "
                    "foreground evidence after the CAMs have joined it (CAMs alone can then "
                    "hold an object the agnostic map misses).", choices=PRESENCE_TARGETS)
    diffusion_saliency: float = setting(
        0.75, "How much the boundary prior adds to the foreground evidence where the labels' "
             "CAMs point: colours the image's outer band lacks count as object (0: off).")
    diffusion_color_model: float = setting(
        0.5, "How much the image's own colour histograms (foreground against background) "
             "correct the foreground evidence before diffusion (0: not at all).")
    transfer_scales: Tuple[float, ...] = setting(
        (1.0,), "Input scales (relative to --lnet_image_size) over which label transfer "
                "averages the L-Net's agnostic map, CAMs and classifier scores.")
    transfer_flip: bool = setting(
        False, "Label transfer also averages the L-Net's outputs over the mirrored image.")
    calibrate: bool = setting(
        False, "Choose the diffusion settings on strong images held out of L-Net training "
              "(label transfer run on them as if they were weak); off: use the values above.")
    calibration_images: int = setting(
        40, "At most this many strong images (and at most 15 % of the strong pool) are held "
            "out for calibration.")

    def params(self):
        """The DiffusionParams these settings describe."""
        from tss_keras.transfer.diffusion import DiffusionParams

        return DiffusionParams(
            radius=self.diffusion_radius, iterations=self.diffusion_iterations,
            anchor=self.diffusion_anchor, color_scale=self.diffusion_color_scale,
            feature_scale=self.diffusion_feature_scale, features=self.diffusion_features,
            confidence=self.diffusion_confidence, cam_weight=self.diffusion_cam_weight,
            cam_power=self.diffusion_cam_power, cam_floor=self.diffusion_cam_floor,
            prototype_weight=self.diffusion_prototype_weight,
            presence=self.diffusion_presence, saliency=self.diffusion_saliency,
            color_model=self.diffusion_color_model,
            class_presence=self.diffusion_class_presence,
            presence_on=self.diffusion_presence_on)


@dataclasses.dataclass
class PNetConfig:
    """The P-Net stage: TS3 or the fully supervised baseline."""

    mode: str = setting("ts3", "ts3 (transfer) or full (supervised baseline on all masks).",
                        choices=("ts3", "full"))
    pnet_steps: int = setting(20000, "P-Net training steps.")
    pnet_lr: float = setting(2.5e-4, "P-Net learning rate.")
    pnet_init: str = setting("backbone", "P-Net encoder start: --weights, or the trained L-Net's "
                                         "encoder.", choices=("backbone", "lnet"))
    weak_weight: float = setting(1.0, "Weight of the pseudo-label cross-entropy.")
    weak_ignores_strong: bool = setting(
        False, "The pseudo-label cross-entropy ignores pixels labelled with a strong class: "
               "strong classes learn from their masks only.")
    lambda_adv: float = setting(0.01, "Weight of the adversarial loss on weak predictions "
                                      "(0: no discriminator).")
    d_lr: float = setting(1e-4, "Discriminator learning rate.")
    discriminator: str = setting(
        "agnostic", "Discriminator design (tss_keras.training.adversarial): onehot (one-hot "
                  "truth vs softmax), matched (truth with the prediction's confidence), "
                  "agnostic (foreground map only; also the 0 % setting's).",
        choices=DESIGNS)
    d_downsample: int = setting(4, "The discriminator sees the maps at 1/this of the crop size.")
    d_downsample_by: str = setting(
        "fold", "How the maps are made smaller for the discriminator: average (each block "
                   "averaged) or fold (each block's pixels become channels, so no detail is "
                   "lost).", choices=DOWNSAMPLINGS)
    d_filters: int = setting(64, "Discriminator width (first layer channels).")
    d_with_image: bool = setting(False, "Condition the discriminator on the image.")
    d_shuffle_classes: bool = setting(True, "Permute foreground channels before the "
                                            "discriminator, so it cannot tell weak classes by "
                                            "their channel.")
    lambda_semi: float = setting(0.0, "Weight of self-training on discriminator-confident weak "
                                      "pixels (0: off).")
    semi_threshold: float = setting(0.2, "Discriminator confidence for self-training pixels.")


@dataclasses.dataclass
class EvalConfig:
    """The eval stage."""

    eval_flip: bool = setting(False, "Average predictions with the flipped image.")
    eval_scales: Tuple[float, ...] = setting((1.0,), "Input scales averaged at evaluation.")
    baseline_results: Optional[str] = setting(
        None, "results.json of a --mode=full run: adds ratio_to_baseline.")


@dataclasses.dataclass
class ExportConfig:
    """The export stage and ``python -m export.run``."""

    export_dir: Optional[str] = setting(
        None, "TF Serving base path; versions go to <export_dir>/<model_name>/<N>/ "
              "(default <model_dir>/export).")
    model_name: str = setting("ts3", "TF Serving model name.")
    export_version: Optional[int] = setting(None, "Version number (default: the next free one).")
    export_formats: Tuple[str, ...] = setting(EXPORT_FORMATS, "Artifacts to write.",
                                              choices=EXPORT_FORMATS)
    tflite_quantization: Tuple[str, ...] = setting(
        TFLITE_QUANTIZATIONS, "TFLite variants: none (float32), fp16, int8.",
        choices=TFLITE_QUANTIZATIONS)
    tflite_input_size: Optional[Tuple[int, int]] = setting(
        None, "TFLite input H,W (default: the run's crop size).")
    parity_images: int = setting(20, "Validation images for the parity check.")
    min_saved_model_agreement: float = setting(
        0.999, "Fail below this argmax agreement for the SavedModel and .keras files.")
    min_tflite_float_agreement: float = setting(0.995, "Fail below this for float32 TFLite.")
    min_tflite_fp16_agreement: float = setting(0.99, "Fail below this for fp16 TFLite.")
    min_tflite_int8_agreement: float = setting(0.95, "Fail below this for int8 TFLite.")


SECTIONS = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig,
    "distribute": DistributeConfig, "lnet": LNetConfig, "diffusion": DiffusionConfig,
    "pnet": PNetConfig, "eval": EvalConfig, "export": ExportConfig,
}
# Settings renamed in this release: old name -> new name (flags and run_config.json keys).
RENAMED = {"formats": "export_formats", "version": "export_version"}


@dataclasses.dataclass
class RunConfig:
    """Everything ``python -m trainers.run`` does: the run's own settings and one per section."""

    model_dir: str = setting("", "Where checkpoints, pseudo-labels, logs and results go.",
                             required=True)
    stages: Tuple[str, ...] = setting(("data", "lnet", "transfer", "pnet", "eval"),
                                      "Stages to run, in pipeline order.", choices=STAGES)
    overwrite: bool = setting(False, "Redo finished stages; replace an existing export version.")
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distribute: DistributeConfig = dataclasses.field(default_factory=DistributeConfig)
    lnet: LNetConfig = dataclasses.field(default_factory=LNetConfig)
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    pnet: PNetConfig = dataclasses.field(default_factory=PNetConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def settings(self):
        """{setting name: value} over the run and every section (names are unique)."""
        values = {f.name: getattr(self, f.name) for f in run_fields()}
        for section in SECTIONS:
            values.update(dataclasses.asdict(getattr(self, section)))
        return values

    def replace(self, **changes):
        """A copy with the named settings changed, wherever they live."""
        run_changes = {k: v for k, v in changes.items() if k in {f.name for f in run_fields()}}
        sections = {}
        for section, cls in SECTIONS.items():
            names = {f.name for f in dataclasses.fields(cls)}
            own = {k: v for k, v in changes.items() if k in names}
            if own:
                sections[section] = dataclasses.replace(getattr(self, section), **own)
        unknown = set(changes) - set(run_changes) - {k for s in sections.values()
                                                     for k in dataclasses.asdict(s)}
        if unknown:
            raise UsageError(f"unknown setting(s) {sorted(unknown)}")
        return dataclasses.replace(self, **run_changes, **sections)

    def to_json(self):
        """A JSON-ready dict: run settings at the top, one object per section."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data, source="run_config.json"):
        """Reads ``to_json()`` output back; unknown or renamed keys are a clear error."""
        if not isinstance(data, dict):
            raise DataError(f"{source}: not a JSON object")
        expected = {f.name for f in run_fields()} | set(SECTIONS)
        _check_keys(data, expected, source)
        run = {f.name: _typed(f, data[f.name]) for f in run_fields() if f.name in data}
        sections = {}
        for section, section_cls in SECTIONS.items():
            values = data.get(section, {})
            if not isinstance(values, dict):
                raise DataError(f"{source}: {section!r} is not an object")
            fields = {f.name: f for f in dataclasses.fields(section_cls)}
            _check_keys(values, set(fields), f"{source}: {section}")
            sections[section] = section_cls(**{k: _typed(fields[k], v) for k, v in values.items()})
        return cls(**run, **sections)

    @classmethod
    def read(cls, model_dir):
        """The config a run was made with (``<model_dir>/run_config.json``)."""
        from tss_keras.layout import RunLayout

        path = RunLayout(model_dir).run_config
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: not a trainers.run model_dir (no run_config.json)") from None
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        return cls.from_json(data, path)

    def with_absolute_paths(self):
        """Paths made absolute, so that a saved config works from any directory."""
        def absolute(path):
            return os.path.abspath(path) if path else path
        data = dataclasses.replace(
            self.data, data_dir=absolute(self.data.data_dir),
            class_names_file=absolute(self.data.class_names_file),
            agnostic_data_dir=absolute(self.data.agnostic_data_dir))
        return dataclasses.replace(self, model_dir=absolute(self.model_dir), data=data)


def run_fields():
    """The RunConfig fields that are settings (not sections)."""
    return [f for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]


def all_fields():
    """Every setting field: the run's own, then each section's, in declaration order."""
    fields = run_fields()
    for section_cls in SECTIONS.values():
        fields += list(dataclasses.fields(section_cls))
    return fields


def _check_keys(data, expected, source):
    for key in data:
        if key in RENAMED:
            raise DataError(f"{source}: {key!r} was renamed {RENAMED[key]!r} in this release")
        if key not in expected:
            raise DataError(f"{source}: unknown setting {key!r} (written by another version of "
                            f"tss_keras? re-run the stage with --overwrite)")


def _typed(field, value):
    """A JSON value as the field's type (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
