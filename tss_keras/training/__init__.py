"""Training: the L-Net and P-Net train steps, the loop that runs them under any strategy."""

from tss_keras.training.distribute import Cluster, create_strategy
from tss_keras.training.lnet_model import LNetTrainer
from tss_keras.training.loop import TrainingLoop, TrainingPreempted
from tss_keras.training.optimizers import make_optimizer
from tss_keras.training.ts3_model import TS3Model

__all__ = ["Cluster", "LNetTrainer", "TS3Model", "TrainingLoop", "TrainingPreempted",
           "create_strategy", "make_optimizer"]
