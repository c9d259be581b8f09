"""RunConfig: every setting of a training run, independent of how it was parsed."""

import dataclasses
from typing import Optional, Tuple

STAGES = ("data", "lnet", "transfer", "pnet", "eval", "export")


@dataclasses.dataclass
class DiffusionConfig:
    """Self-diffusion parameters (see tss_keras.transfer.diffusion).

    Defaults were chosen by a sweep on the embedded set's weak pool (radius
    3/5/7/9, 20/40 iterations, colour scale 10/20/40, CAM power 1-3,
    confidence 0.5/0.6); a longer reach (radius 7 on the 1/4 grid) and
    leaving ambiguous pixels void (confidence 0.6) helped most.
    """

    radius: int = 7
    iterations: int = 20
    color_scale: float = 20.0
    feature_scale: float = 0.5
    feature_source: str = "both"   # color | features | both
    working_stride: int = 4
    confidence: float = 0.6
    cam_power: float = 1.0
    cam_weight: float = 1.0


@dataclasses.dataclass
class RunConfig:
    """Settings of ``python -m trainers.run``; field names equal the flag names."""

    data_dir: str = ""
    model_dir: str = ""
    class_names_file: Optional[str] = None
    train_split: str = "train"
    eval_split: str = "val"
    strong_classes: str = "all"
    agnostic_data_dir: Optional[str] = None
    synthetic_data: bool = False
    skip_bad: bool = False
    backbone: str = "resnet50"
    output_stride: int = 16
    weights: Optional[str] = None
    crop_size: Tuple[int, int] = (321, 321)
    batch_size: int = 8
    min_scale: float = 0.5
    max_scale: float = 2.0
    optimizer: str = "sgd"
    lnet_steps: int = 10000
    lnet_lr: float = 1e-3
    pnet_steps: int = 20000
    pnet_lr: float = 2.5e-4
    d_lr: float = 1e-4
    weight_decay: float = 1e-4
    checkpoint_every: int = 500
    strategy: str = "auto"
    num_gpus: Optional[int] = None
    cpu_replicas: int = 0
    seed: int = 0
    stages: Tuple[str, ...] = ("data", "lnet", "transfer", "pnet", "eval")
    overwrite: bool = False
    mode: str = "ts3"
    lambda_adv: float = 0.01
    weak_weight: float = 1.0
    lambda_semi: float = 0.0
    semi_threshold: float = 0.2
    d_filters: int = 64
    d_with_image: bool = False
    d_shuffle_classes: bool = True
    aspp_filters: int = 256
    aspp_rates: Tuple[int, ...] = (6, 12, 18)
    pnet_init: str = "backbone"
    sync_bn: bool = False
    mixed_precision: bool = False
    xla: bool = False
    eval_flip: bool = False
    eval_scales: Tuple[float, ...] = (1.0,)
    baseline_results: Optional[str] = None
    export_dir: Optional[str] = None
    model_name: str = "ts3"
    export_formats: Tuple[str, ...] = ("saved_model", "tflite", "keras")
    tflite_quantization: Tuple[str, ...] = ("none", "fp16", "int8")
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
