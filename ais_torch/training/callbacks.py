"""Lightning callbacks: a live prediction preview (like Ais's live overlay), the best epoch kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

from ais_torch.formats.mrc import read_volume
from ais_torch.segmentation.api import segment_volume
from ais_torch.training.sources import LazyTomogram, TomogramSource, open_volume

if TYPE_CHECKING:
    import torch

    from ais_torch.formats.scnm import ModelMetadata

log = logging.getLogger("ais_torch.train")


class PredictionPreview(Callback):
    """Every epoch, log ``input | prediction | label`` for one fixed slice as an image.

    The prediction is what ``ais-torch segment`` would write for this slice with the model as
    it stands (:func:`ais_torch.segment_volume`: the same rescaling and normalisation), and it
    and the label are painted in the model's colour so the panel reads like the Ais GUI's
    overlay. ``max_size`` crops the panel (not the segmentation) to keep the logs small.
    """

    def __init__(
        self,
        tomogram: TomogramSource,
        z: int,
        labels: str | os.PathLike | None,
        colour: tuple[float, float, float],
        *,
        max_size: int = 256,
        tag: str = "preview/input_prediction_label",
    ) -> None:
        self.tomogram = tomogram if isinstance(tomogram, LazyTomogram) else Path(tomogram)
        self.z = int(z)
        self.labels = None if labels is None else Path(labels)
        self.colour = np.asarray(colour, np.float32).reshape(1, 1, 3)
        self.max_size = int(max_size)
        self.tag = tag

    def prediction(self, module: LightningModule, metadata: ModelMetadata) -> np.ndarray:
        """Probabilities ``(y, x)`` of the preview slice, as ``segment`` computes them."""
        volume = open_volume(self.tomogram)
        module.metadata = metadata
        out = segment_volume(
            volume, module, dtype="float32", z_range=(self.z, self.z + 1), device=_device_of(module)
        )
        return out[metadata.title][self.z]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or trainer.logger is None:
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        prob = self.prediction(pl_module, preview_metadata(pl_module, trainer))
        crop = (slice(0, self.max_size), slice(0, self.max_size))
        image = np.asarray(open_volume(self.tomogram).data[self.z], np.float32)
        label = None
        if self.labels is not None:
            label = np.asarray(read_volume(self.labels, check_finite=False).data[self.z])[crop]
        panel = preview_panel(image[crop], prob[crop], label, self.colour)
        experiment.add_image(self.tag, panel, trainer.current_epoch, dataformats="HWC")


def preview_metadata(module: LightningModule, trainer: Trainer) -> ModelMetadata:
    """What the saved model's metadata will say about pixel size and normalisation.

    A network that already carries metadata (fine-tuned from a model file) keeps its own.
    """
    from ais_torch.formats.scnm import ModelMetadata

    existing = getattr(module, "metadata", None)
    if isinstance(existing, ModelMetadata):
        return existing
    datamodule = getattr(trainer, "datamodule", None)
    apix = float(getattr(datamodule, "apix", 0.0) or -1.0)
    depth = int(getattr(module.hparams, "in_channels", 1) or 1)
    if getattr(module, "emits_slab", False):  # a 3D slab net: its slab depth, its Z weights
        depth = int(getattr(module, "depth", depth))
        z_jitter = int(getattr(datamodule, "z_jitter", 0) or 0)
        return ModelMetadata(title="preview", apix=apix, model_depth=depth, z_jitter=z_jitter)
    return ModelMetadata(title="preview", apix=apix, model_depth=depth)


def _device_of(module: LightningModule) -> str:
    param = next(module.parameters(), None)
    return "cpu" if param is None else str(param.device)


def preview_panel(
    image: np.ndarray, prob: np.ndarray, label: np.ndarray | None, colour: np.ndarray
) -> np.ndarray:
    """``(y, x)`` slice, probabilities and label → ``(y, 3x, 3)`` float RGB in [0, 1]."""
    lo, hi = np.percentile(image, [1, 99])
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)[..., None].repeat(3, axis=-1)
    colour = np.asarray(colour, np.float32).reshape(1, 1, 3)

    def overlay(weight: np.ndarray) -> np.ndarray:
        w = np.clip(weight, 0, 1)[..., None]
        return grey * (1 - 0.7 * w) + colour * 0.7 * w

    truth = np.zeros_like(prob) if label is None else (np.asarray(label) == 1).astype(np.float32)
    return np.concatenate([grey, overlay(prob), overlay(truth)], axis=1).astype(np.float32)


class KeepLowestLossEpoch(Callback):
    """At the end of training, the weights of the epoch with the lowest mean training loss.

    The original Ais saves its model whenever an epoch's loss is the lowest so far, so a noisy
    last epoch does not cost the run; this does the same in memory (one copy of the weights
    on the CPU). Drop it with ``~callbacks.keep_best`` to keep the last step's weights.
    """

    def __init__(self, monitor: str = "train/loss_epoch") -> None:
        self.monitor = monitor
        self.best = float("inf")
        self.best_epoch: int | None = None
        self._state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loss = trainer.callback_metrics.get(self.monitor)
        if loss is None or not float(loss) < self.best:
            return
        self.best, self.best_epoch = float(loss), int(trainer.current_epoch)
        self._state = {
            name: value.detach().to("cpu", copy=True)
            for name, value in pl_module.state_dict().items()
        }

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._state is None or trainer.interrupted:
            return
        pl_module.load_state_dict(self._state)
        log.info("kept epoch %d (lowest training loss, %.4f)", self.best_epoch, self.best)
