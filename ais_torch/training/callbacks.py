"""Lightning callbacks: a live prediction preview in TensorBoard, like Ais's live overlay."""

from __future__ import annotations

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

from ais_torch.segmentation.preview import predict_slices


class PredictionPreview(Callback):
    """Every epoch, log ``input | prediction | label`` for one fixed slice as an image.

    The prediction and the label are painted in the model's colour so the panel reads like the
    Ais GUI's overlay.
    """

    def __init__(
        self,
        image: np.ndarray,
        label: np.ndarray | None,
        colour: tuple[float, float, float],
        tag: str = "preview/input_prediction_label",
    ) -> None:
        self.image = np.asarray(image, np.float32)
        self.label = None if label is None else np.asarray(label)
        self.colour = np.asarray(colour, np.float32).reshape(1, 1, 3)
        self.tag = tag

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or trainer.logger is None:
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        prob = predict_slices(pl_module, self.image[None], batch_size=1)[0]
        panel = preview_panel(self.image, prob, self.label, self.colour)
        experiment.add_image(self.tag, panel, trainer.current_epoch, dataformats="HWC")


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
