"""One config: flags generated from the dataclasses, run_config.json round trips, flag files."""

import dataclasses
import json
import os

import pytest
from absl import flags

from conftest import ROOT
from tss_keras import config as cfg
from tss_keras.config_flags import config_from_flags, define_flags, settings_as_flags
from tss_keras.errors import DataError, UsageError


def _flag_values(*argv):
    values = flags.FlagValues()
    define_flags(values)
    values(["prog", *argv])
    return values


def test_every_flag_is_a_field_and_every_field_a_flag():
    values = _flag_values()
    fields = {f.name: f for f in cfg.all_fields()}
    names = set(values) - {"flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml"}
    assert names == set(fields) | set(cfg.RENAMED)
    for name, field in fields.items():
        default = values[name].default
        if field.metadata.get("required"):
            assert default is None, name
        elif isinstance(field.default, tuple):
            assert default == [str(v) for v in field.default], name
        else:
            assert default == field.default, name
        assert field.metadata["help"] in values[name].help, name


def test_flags_build_the_config_they_name():
    values = _flag_values("--data_dir=d", "--model_dir=m", "--crop_size=64", "--aspp_rates=1,2",
                          "--eval_scales=0.5,1", "--diffusion_radius=4", "--nocalibrate",
                          "--stages=data,lnet")
    config = config_from_flags(values)
    assert config.data.crop_size == (64, 64) and config.model.aspp_rates == (1, 2)
    assert config.eval.eval_scales == (0.5, 1.0) and config.diffusion.diffusion_radius == 4
    assert config.diffusion.calibrate is False and config.stages == ("data", "lnet")
    assert config.settings()["diffusion_radius"] == 4


def test_every_diffusion_parameter_comes_from_its_flag():
    from tss_keras.transfer.diffusion import DiffusionParams

    config = cfg.DiffusionConfig()
    flag_fields = {f.name: f for f in dataclasses.fields(config)}
    changed = {}
    for field in dataclasses.fields(DiffusionParams):
        name = f"diffusion_{field.name}"
        default = getattr(config, name)
        if isinstance(default, str):
            changed[name] = next(c for c in flag_fields[name].metadata["choices"] if c != default)
        else:
            changed[name] = type(default)(default + 1)
    params = dataclasses.replace(config, **changed).params()
    for field in dataclasses.fields(DiffusionParams):
        assert getattr(params, field.name) == changed[f"diffusion_{field.name}"], field.name


def test_run_config_json_round_trips():
    config = cfg.RunConfig(model_dir="m", stages=("pnet", "eval")).replace(
        data_dir="d", crop_size=(48, 64), backbone="tiny", lambda_adv=0.0, discriminator="matched",
        eval_scales=(0.75, 1.0), tflite_input_size=(32, 40), export_version=3)
    text = json.dumps(config.to_json())
    assert cfg.RunConfig.from_json(json.loads(text)) == config
    assert dataclasses.asdict(cfg.RunConfig.from_json(json.loads(text))) == dataclasses.asdict(config)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["data"].update(learning_rate=1), "unknown setting 'learning_rate'"),
    (lambda d: d["export"].update(formats=["tflite"]), "'formats' was renamed 'export_formats'"),
    (lambda d: d.update(diffusion=[]), "'diffusion' is not an object"),
])
def test_bad_run_config_is_a_clear_error(change, message):
    data = cfg.RunConfig().to_json()
    change(data)
    with pytest.raises(DataError, match=message):
        cfg.RunConfig.from_json(data, "run_config.json")


@pytest.mark.parametrize("argv, message", [
    (["--backbone=alexnet"], "--backbone: unknown backbone 'alexnet'"),
    (["--stages=data,fly"], "--stages: unknown stage(s) ['fly']"),
    (["--lambda_semi=0.1", "--lambda_adv=0"], "--lambda_semi: self-training uses"),
    (["--mode=full", "--d_with_image"], "--d_with_image: --mode=full trains no discriminator"),
    (["--batch_size=0"], "--batch_size: must be at least 1"),
    (["--lnet_color_jitter=1.5"], "--lnet_color_jitter: must be between 0 and 1 (got 1.5)"),
    (["--diffusion_cam_floor=1"], "--diffusion_cam_floor: must be at least 0 and below 1 "
                                  "(got 1.0)"),
    (["--formats=tflite"], "--formats: renamed --export_formats"),
])
def test_settings_are_checked_before_any_work(argv, message):
    values = _flag_values("--data_dir=d", "--model_dir=m", *argv)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        config_from_flags(values)


def test_recorded_settings_written_back_as_flags_give_the_same_config():
    """settings_as_flags: what stages.json records, as flags that name the same run."""
    config = cfg.RunConfig().replace(data_dir="d", model_dir="m", crop_size=(64, 48),
                                     aspp_rates=(1, 2), calibrate=True, synthetic_data=False,
                                     lnet_rounds=2, lnet_color_jitter=0.5,
                                     transfer_scales=(1.0, 1.5), lnet_cam_pooling="lse",
                                     num_gpus=None)
    flags_back = settings_as_flags(json.loads(json.dumps(config.settings())))
    assert "--calibrate" in flags_back and "--nosynthetic_data" in flags_back
    assert config_from_flags(_flag_values(*flags_back)).settings() == config.settings()


def test_demo_flags_parse_as_the_quickstart_uses_them():
    values = _flag_values(f"--flagfile={os.path.join(ROOT, 'demo.flags')}")
    config = config_from_flags(values)
    assert config.model.backbone == "tiny" and config.data.synthetic_data
    assert config.data.crop_size == (96, 96) and config.model_dir == "demo_run"
    assert config.stages == ("data", "lnet", "transfer", "pnet", "eval")
    # later flags win, as README says
    values = _flag_values(f"--flagfile={os.path.join(ROOT, 'demo.flags')}", "--backbone=resnet50")
    assert config_from_flags(values).model.backbone == "resnet50"


def test_help_lists_this_projects_flags_only():
    from conftest import run_module

    result = run_module("trainers.run", "--help")  # absl exits 1 after --help
    names = {line.split(":")[0].strip().replace("[no]", "") for line in result.stdout.splitlines()
             if line.startswith("  --")}
    assert names >= {f"--{f.name}" for f in cfg.all_fields()}
    assert not names & {"--logtostderr", "--tt_check_filter", "--xml_output_file"}  # absl's, TF's
    assert "--data_dir and --model_dir are required" in result.stdout
