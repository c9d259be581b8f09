"""Runs the stages of a TS3 run in order; finished stages are skipped, stale ones are refused.

Every stage records the settings it was made with in ``stages.json``
(including its upstream stage's). When a finished stage's recorded
settings differ from this run's, the run stops with one line naming the
changed flag, rather than reusing a stale output or destroying it;
``--overwrite`` redoes the stage.
"""

import json
import os

import tensorflow as tf

from tss_keras.config import STAGES, VALUES_BEFORE_THEY_EXISTED
from tss_keras.errors import UsageError
from tss_keras.files import write_json
from tss_keras.stages.base import StageContext
from tss_keras.stages.data import DataStage
from tss_keras.stages.eval import EvalStage
from tss_keras.stages.export import ExportStage
from tss_keras.stages.lnet import LNetStage
from tss_keras.stages.pnet import PNetStage
from tss_keras.stages.transfer import TransferStage
from tss_keras.training.distribute import Cluster, barrier

STAGE_CLASSES = {stage.name: stage for stage in (DataStage, LNetStage, TransferStage, PNetStage,
                                                 EvalStage, ExportStage)}
assert tuple(STAGE_CLASSES) == STAGES


def _flat_settings(config):
    values = config.to_json()
    flat = {k: v for k, v in values.items() if not isinstance(v, dict)}
    for section in values.values():
        if isinstance(section, dict):
            flat.update(section)
    return flat


def recorded_settings(stage_name, config, known=None):
    """{setting: value} a stage's output depends on, its upstream stages' included.

    Args:
        stage_name: the stage.
        config: this run's RunConfig (the stage's own settings come from it).
        known: {stage: settings} of outputs already made (from ``stages.json``);
            an upstream stage found there contributes what it was made with,
            not this run's values.
    """
    known = known or {}
    stage = STAGE_CLASSES[stage_name]()
    flat = _flat_settings(config)
    own = {k: flat[k] for k in stage.depends_on(config)}
    upstream = stage.upstream(config)
    if upstream is None:
        return dict(sorted(own.items()))
    before = known.get(upstream) or recorded_settings(upstream, config, known)
    return dict(sorted({**before, **own}.items()))


def read_recorded(layout):
    """{stage: settings it was made with} of a run (``stages.json``); {} if none is done."""
    if not os.path.isfile(layout.stage_settings):
        return {}
    with open(layout.stage_settings, encoding="utf-8") as f:
        return json.load(f)


def _changed(stage_name, old, new, model_dir):
    # A setting recorded but no longer depended on (e.g. the discriminator's, for a
    # --mode=full run) is no change; one depended on but not recorded is, unless the stage
    # was made before the setting existed and this run has the value that did the same.
    old = {**VALUES_BEFORE_THEY_EXISTED, **old}
    for key in sorted(new):
        if old.get(key) != new.get(key):
            made = (f"{key}={old[key]!r}" if key in old else f"no {key} setting")
            return UsageError(
                f"--{key}: stage {stage_name} in {model_dir} was made with {made}, this run "
                f"has {new.get(key)!r}; pass --overwrite to redo it (or use another --model_dir)")
    return None


def check_devices(config):
    """Device-dependent settings, checked before any work."""
    if config.train.mixed_precision and config.train.xla \
            and not tf.config.list_logical_devices("GPU"):
        # XLA's CPU backend rejects the float16/float32 mix in the gradients.
        raise UsageError("--xla with --mixed_precision needs a GPU; on CPU use one or the other")


def run_stages(config, strategy=None, cluster=None):
    """Runs ``config.stages`` in pipeline order and returns {stage: output path}.

    Everything that can be checked is checked before the first stage runs:
    settings, inputs of stages whose producers are not in this run, stale
    outputs. A killed stage resumes from its last checkpoint when re-run.
    """
    context = StageContext(config, strategy or tf.distribute.get_strategy(), cluster or Cluster())
    layout, cluster = context.layout, context.cluster
    names = [name for name in STAGES if name in config.stages]
    stages = [STAGE_CLASSES[name]() for name in names]
    check_devices(config)
    for stage in stages:
        stage.check(context, names)
    recorded = read_recorded(layout)
    known = dict(recorded)  # what each output on disk was (or this run will be) made with
    plan = []
    for stage in stages:
        output = stage.output(layout)
        done = output is not None and os.path.isfile(output) and not config.overwrite
        if done and stage.name in recorded:  # made as this run's flags say, all the way up?
            error = _changed(stage.name, recorded[stage.name],
                             recorded_settings(stage.name, config), config.model_dir)
            if error:
                raise error
        settings = recorded_settings(stage.name, config, known)
        if not done or stage.name not in recorded:
            known[stage.name] = settings
        plan.append((stage, settings, done))
    barrier(context.strategy)  # every worker has planned before anyone writes
    if cluster.is_chief:
        os.makedirs(config.model_dir, exist_ok=True)
        write_json(layout.run_config, config.with_absolute_paths().to_json())
    outputs = {}
    for stage, settings, done in plan:
        if done:
            context.say(f"Stage {stage.name}: done already ({stage.output(layout)}); "
                        f"--overwrite to redo")
            outputs[stage.name] = stage.output(layout)
            continue
        if config.overwrite and cluster.is_chief:
            stage.clear(layout)
        barrier(context.strategy)
        context.say(f"== Stage {stage.name}")
        outputs[stage.name] = stage.run(context)
        barrier(context.strategy)
        if cluster.is_chief and stage.output(layout) is not None:
            recorded = read_recorded(layout)
            recorded[stage.name] = settings
            write_json(layout.stage_settings, recorded)
    return outputs
