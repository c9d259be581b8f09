"""What every stage has: its output, the settings it depends on, and how to run it."""

import dataclasses
import functools
import os
import shutil

import keras
import tensorflow as tf

from tss_keras.config import RunConfig
from tss_keras.data.training_set import load_training_set
from tss_keras.layout import RunLayout
from tss_keras.training.distribute import Cluster


@dataclasses.dataclass
class StageContext:
    """What a stage runs with.

    Attributes:
        config: the run's settings.
        strategy: the tf.distribute strategy (created before anything else).
        cluster: this process's place among the workers.
    """

    config: RunConfig
    strategy: tf.distribute.Strategy = None
    cluster: Cluster = dataclasses.field(default_factory=Cluster)

    @property
    def layout(self):
        return RunLayout(self.config.model_dir)

    @functools.cached_property
    def training_set(self):
        """The training split, read once per run (bad files reported by the chief)."""
        return load_training_set(self.config.data, verbose=self.cluster.is_chief)

    def say(self, message):
        """Prints on the chief only (workers' output would repeat it)."""
        if self.cluster.is_chief:
            print(message, flush=True)


def seed_everything(seed):
    """Seeds Python, NumPy and TensorFlow (the data pipelines take the seed explicitly too)."""
    keras.utils.set_random_seed(seed)


class Stage:
    """One step of a run.

    Subclasses set ``name`` and ``settings`` (the setting names their output
    depends on), and implement ``output`` and ``run``. A stage's recorded
    settings include its upstream stage's, so a change early in the pipeline
    is noticed by every stage after it.
    """

    name = ""
    settings = ()

    def depends_on(self, config):
        """The names of the settings this stage's output depends on, for ``config``."""
        return self.settings

    def upstream(self, config):
        """The name of the stage whose output this one reads (None if none)."""
        return None

    def output(self, layout):
        """The file whose existence means the stage is done (None: never done)."""
        raise NotImplementedError

    def clear(self, layout):
        """Removes the stage's outputs before it is redone (``--overwrite``)."""
        for path in self.owned_paths(layout):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.isfile(path):
                os.remove(path)

    def owned_paths(self, layout):
        """Files and folders the stage writes (removed by ``clear``)."""
        return [self.output(layout)]

    def check(self, context, planned):
        """Fails early (before any stage runs) on inputs this stage will lack.

        Args:
            context: the StageContext.
            planned: names of the stages this run will execute.
        """

    def run(self, context):
        """Runs the stage; returns the path of its main output."""
        raise NotImplementedError
