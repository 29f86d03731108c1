"""Train from the widget through ``ais-torch train``'s own function, with progress and cancel.

The run is ``conf/train.yaml`` composed with the overrides of
:func:`~ais_torch.napari.annotations.train_overrides` — the same list the widget prints as a
command line — and handed to :func:`ais_torch.commands.train.train`: one training loop for the
command line and the GUI. A Lightning callback reports progress and loss, and raises
:class:`TrainingCancelled` when asked to stop, so no model file is written for a cancelled run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L

from ais_torch.errors import AisError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ais_torch.commands.train import TrainResult


class TrainingCancelled(AisError):
    """The user pressed Cancel; the run stopped before writing a model."""


@dataclass
class Progress:
    """One report: where the run is, the latest loss, and the estimated time left."""

    step: int
    total: int
    epoch: int
    epochs: int
    loss: float | None
    eta_s: float | None

    def text(self) -> str:
        loss = "" if self.loss is None else f", loss {self.loss:.4f}"
        eta = "" if self.eta_s is None else f", {self.eta_s:.0f} s left"
        return f"epoch {self.epoch + 1}/{self.epochs}, step {self.step}/{self.total}{loss}{eta}"


class ProgressCallback(L.Callback):
    """Reports each training step to ``report`` and stops the run when ``cancel`` is set."""

    def __init__(self, report: Callable[[Progress], None], cancel: threading.Event) -> None:
        self.report = report
        self.cancel = cancel
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._check()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        total = int(trainer.estimated_stepping_batches)
        step = int(trainer.global_step)
        loss = None
        if isinstance(outputs, dict) and "loss" in outputs:
            loss = float(outputs["loss"])
        elif outputs is not None and hasattr(outputs, "item"):
            loss = float(outputs.item())
        elapsed = time.perf_counter() - self._start
        eta = elapsed / step * (total - step) if step else None
        self.report(
            Progress(step, total, trainer.current_epoch, int(trainer.max_epochs or 1), loss, eta)
        )
        self._check()

    def _check(self) -> None:
        if self.cancel.is_set():
            raise TrainingCancelled("training cancelled; no model was written")


def compose(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``ais-torch train`` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ais_torch.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def run_training(
    overrides: list[str],
    output_dir: str | Path,
    *,
    report: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train as ``ais-torch train <overrides> hydra.run.dir=<output_dir>`` does → its result.

    The progress bar of the console is off (the widget shows its own).
    """
    from ais_torch.commands.train import train

    cfg = compose([*overrides, "trainer.enable_progress_bar=false"])
    callback = ProgressCallback(report or (lambda p: None), cancel or threading.Event())
    output_dir = Path(output_dir)
    result = train(cfg, output_dir, extra_callbacks=[callback])
    if cancel is not None and cancel.is_set() and not result.model_path.exists():
        raise TrainingCancelled("training cancelled; no model was written")
    return result
