"""The stages of a TS3 run (data, lnet, transfer, pnet, eval, export) and their orchestrator."""

from tss_keras.stages.orchestrator import STAGE_CLASSES, recorded_settings, run_stages

__all__ = ["STAGE_CLASSES", "recorded_settings", "run_stages"]
