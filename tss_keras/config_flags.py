"""absl flags generated from the config dataclasses, and parsed back into a RunConfig.

A flag's name is its field's name and its help is the field's ``help``; list
settings are comma-separated. ``config_from_flags`` validates every value
(choices, ranges, sizes) before any work starts, raising a UsageError that
names the flag.

Example:
    >>> define_flags(flags.FLAGS)           # in an entry point, at import
    >>> config = config_from_flags(flags.FLAGS)
"""

import typing

from absl import flags

from tss_keras import config as cfg
from tss_keras.errors import UsageError

# Flags defined here belong to the entry point that asks for them, so that
# its --help lists them (absl shows only the main module's flags there).
flags.disclaim_key_flags()


def _kind(field):
    """(base type, is_list, is_size) of a setting field's annotation."""
    annotation = field.type
    if typing.get_origin(annotation) is typing.Union:  # Optional[X]
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) in (tuple, typing.Tuple):
        args = typing.get_args(annotation)
        is_size = len(args) == 2 and args[1] is not Ellipsis
        return args[0], True, is_size
    return annotation, False, False


def _help(field):
    meta = field.metadata
    text = meta["help"]
    if meta.get("choices") and _kind(field)[0] is not bool:
        text += f" One of: {', '.join(str(c) for c in meta['choices'])}."
    if meta.get("required"):
        text = "(required) " + text
    return text


def define_flags(flag_values=flags.FLAGS, names=None):
    """Defines one flag per setting field (or only those in ``names``).

    Args:
        flag_values: the absl FlagValues to define into.
        names: setting names to define; None defines all of them.
    """
    for field in cfg.all_fields():
        if names is not None and field.name not in names:
            continue
        base, is_list, _ = _kind(field)
        default = None if field.metadata.get("required") else field.default
        kwargs = dict(flag_values=flag_values)
        if is_list:
            value = None if default is None else [str(v) for v in default]
            flags.DEFINE_list(field.name, value, _help(field), **kwargs)
        elif base is bool:
            flags.DEFINE_bool(field.name, default, _help(field), **kwargs)
        elif base is int:
            flags.DEFINE_integer(field.name, default, _help(field), **kwargs)
        elif base is float:
            flags.DEFINE_float(field.name, default, _help(field), **kwargs)
        else:
            flags.DEFINE_string(field.name, default, _help(field), **kwargs)
    for old, new in cfg.RENAMED.items():
        if names is None or new in names:
            flags.DEFINE_string(old, None, f"Renamed: use --{new}.", flag_values=flag_values)


def _parse_list(field, values):
    base, _, is_size = _kind(field)
    if is_size:
        return parse_size(field.name, values)
    try:
        return tuple(base(v.strip()) for v in values)
    except ValueError:
        raise UsageError(f"--{field.name}: {','.join(values)} is not a list of "
                         f"{base.__name__} values") from None


def parse_size(name, values):
    """(height, width) from ``H,W`` or one number for both; each at least 8."""
    try:
        sizes = [int(v) for v in values]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 8:
        raise UsageError(f"--{name}: {','.join(str(v) for v in values)} is not H,W "
                         f"(each at least 8)")
    return tuple(sizes)


def _value(field, flag_values):
    value = flag_values[field.name].value
    if value is None:
        return None
    if _kind(field)[1]:
        return _parse_list(field, value)
    return value


def settings_as_flags(settings):
    """Command-line flags that set ``settings`` ({name: value}, as stages.json records them).

    Booleans become ``--name`` / ``--noname``, lists comma-separated values;
    None (not set) is left out.

    Example:
        >>> settings_as_flags({"lnet_rounds": 2, "calibrate": True, "crop_size": [96, 96]})
        ['--lnet_rounds=2', '--calibrate', '--crop_size=96,96']
    """
    result = []
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, bool):
            result.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, (list, tuple)):
            result.append(f"--{name}={','.join(str(v) for v in value)}")
        else:
            result.append(f"--{name}={value}")
    return result


def config_from_flags(flag_values=flags.FLAGS, base=None):
    """Builds a validated RunConfig from parsed flags.

    Args:
        flag_values: parsed absl FlagValues (with flags from ``define_flags``).
        base: a RunConfig to start from; only flags given on the command line
            (or in a flag file) override it. None starts from the flags' values.
    """
    for old, new in cfg.RENAMED.items():
        if old in flag_values and flag_values[old].present:
            raise UsageError(f"--{old}: renamed --{new} in this release")
    defined = [f for f in cfg.all_fields() if f.name in flag_values]
    changes = {f.name: _value(f, flag_values) for f in defined
               if base is None or flag_values[f.name].present}
    config = (base or cfg.RunConfig()).replace(**changes)
    missing = [f.name for f in defined if f.metadata.get("required")
               and not config.settings()[f.name]]
    if missing:
        raise UsageError(f"--{missing[0]}: this flag is required")
    validate(config)
    return config


def validate(config):
    """Checks every setting's choices and ranges; raises a UsageError naming the flag."""
    settings = config.settings()
    for field in cfg.all_fields():
        choices = field.metadata.get("choices")
        value = settings[field.name]
        if not choices or value is None:
            continue
        if isinstance(value, tuple):
            bad = [v for v in value if v not in choices]
            if bad:
                noun = field.name.replace("_", " ").rstrip("s")
                raise UsageError(f"--{field.name}: unknown {noun}(s) {bad} "
                                 f"(choose from {', '.join(map(str, choices))})")
        elif value not in choices:
            if isinstance(value, int) and not isinstance(value, bool):
                raise UsageError(f"--{field.name}: {value} is not supported "
                                 f"(choose from {', '.join(map(str, choices))})")
            raise UsageError(f"--{field.name}: unknown {field.name.replace('_', ' ')} {value!r} "
                             f"(choose from {', '.join(map(str, choices))})")
    positive = ("batch_size", "checkpoint_every", "lnet_steps", "lnet_rounds", "pnet_steps",
                "parity_images")
    for name in positive:
        if settings[name] is not None and settings[name] < 1:
            raise UsageError(f"--{name}: must be at least 1 (got {settings[name]})")
    if not 0 < settings["min_scale"] <= settings["max_scale"]:
        raise UsageError(f"--min_scale, --max_scale: need 0 < min_scale <= max_scale "
                         f"(got {settings['min_scale']}, {settings['max_scale']})")
    if settings["eval_scales"] and min(settings["eval_scales"]) <= 0:
        raise UsageError(f"--eval_scales: scales must be positive (got {settings['eval_scales']})")
    if not 0 <= settings["lnet_color_jitter"] <= 1:
        raise UsageError(f"--lnet_color_jitter: must be between 0 and 1 "
                         f"(got {settings['lnet_color_jitter']})")
    if not 0 <= settings["diffusion_cam_floor"] < 1:
        raise UsageError(f"--diffusion_cam_floor: must be at least 0 and below 1 "
                         f"(got {settings['diffusion_cam_floor']})")
    if settings["cpu_replicas"] < 0:
        raise UsageError(f"--cpu_replicas: must be 0 or more (got {settings['cpu_replicas']})")
    _check_honoured(settings)


def _check_honoured(settings):
    """Settings that would be silently ignored by the rest of the run are errors."""
    adversarial = settings["mode"] == "ts3" and settings["lambda_adv"] > 0
    if settings["lambda_semi"] > 0 and not adversarial:
        raise UsageError("--lambda_semi: self-training uses the discriminator's confidence; it "
                         "needs --mode=ts3 and --lambda_adv > 0")
    if settings["mode"] == "full" and settings["d_with_image"]:
        raise UsageError("--d_with_image: --mode=full trains no discriminator")
    if settings["head_lr_multiplier"] != 1.0 and settings["optimizer"] != "sgd":
        raise UsageError("--head_lr_multiplier: scales the heads' gradients, which changes "
                         "their learning rate under SGD only (Adam normalises gradients); use "
                         "--optimizer=sgd")
    if settings["d_downsample"] < 1:
        raise UsageError(f"--d_downsample: must be at least 1 (got {settings['d_downsample']})")
