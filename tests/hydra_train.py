"""Compose the training app's Hydra config in a test (shared by the train and fine-tune tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ais_torch.config import config_dir

if TYPE_CHECKING:
    from omegaconf import DictConfig


def compose_train(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``ais-torch train`` would compose it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)
