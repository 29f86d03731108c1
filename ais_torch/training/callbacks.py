"""Lightning callbacks: a live prediction preview in TensorBoard, like Ais's live overlay."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

from ais_torch.formats.mrc import read_volume
from ais_torch.segmentation.api import segment_volume

if TYPE_CHECKING:
    from ais_torch.formats.scnm import ModelMetadata


class PredictionPreview(Callback):
    """Every epoch, log ``input | prediction | label`` for one fixed slice as an image.

    The prediction is what ``ais-torch segment`` would write for this slice with the model as
    it stands (:func:`ais_torch.segment_volume`: the same rescaling and normalisation), and it
    and the label are painted in the model's colour so the panel reads like the Ais GUI's
    overlay. ``max_size`` crops the panel (not the segmentation) to keep the logs small.
    """

    def __init__(
        self,
        tomogram: str | os.PathLike,
        z: int,
        labels: str | os.PathLike | None,
        colour: tuple[float, float, float],
        *,
        max_size: int = 256,
        tag: str = "preview/input_prediction_label",
    ) -> None:
        self.tomogram = Path(tomogram)
        self.z = int(z)
        self.labels = None if labels is None else Path(labels)
        self.colour = np.asarray(colour, np.float32).reshape(1, 1, 3)
        self.max_size = int(max_size)
        self.tag = tag

    def prediction(self, module: LightningModule, metadata: ModelMetadata) -> np.ndarray:
        """Probabilities ``(y, x)`` of the preview slice, as ``segment`` computes them."""
        volume = read_volume(self.tomogram, check_finite=False)
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
        image = np.asarray(read_volume(self.tomogram, check_finite=False).data[self.z], np.float32)
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
