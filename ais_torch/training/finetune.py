"""Fine-tuning: continue training a model file (ours or the original's) on new data.

``ais-torch train … init=Model.scnm`` is the original's ``ais train -m Model.scnm``: the network
and its weights come from the file (the original's Keras weights are mapped onto the matching
ais_torch architecture), and the run keeps what the model was made for — pixel size, box size,
normalisation — unless the data keys say otherwise. This is how a downloaded model is adapted
to one's own tomograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.archs.base import AisArch
from ais_torch.errors import ConfigError
from ais_torch.formats.scnm import ModelMetadata, load_scnm

if TYPE_CHECKING:
    from collections.abc import Mapping

GLOBAL_MAD = "global_mad"


@dataclass(frozen=True)
class StartingModel:
    """A trainable network loaded from a model file, with what its data must match."""

    network: AisArch
    metadata: ModelMetadata
    path: Path

    def data_overrides(self, data: Mapping[str, object]) -> dict[str, object]:
        """Datamodule arguments that keep the model's box size, pixel size and normalisation.

        A key the user set (not ``None`` in ``data``) wins; otherwise the model's value. A
        global_mad model keeps training on globally normalised boxes as they are; a model that
        normalises slice by slice keeps training on standardised boxes.
        """
        meta = self.metadata
        return {
            "box_size": data.get("box_size") or int(meta.box_size),
            "apix": data.get("apix") or float(meta.apix),
            "standardise_boxes": (
                data.get("standardise_boxes")
                if data.get("standardise_boxes") is not None
                else (None if meta.normalization == GLOBAL_MAD else True)
            ),
        }

    def check_depth(self, box_depth: int, origin: str) -> None:
        """Refuse boxes whose depth the network cannot take (its input channels)."""
        channels = int(self.network.hparams.in_channels)
        if box_depth != channels:
            raise ConfigError(
                f"{origin}: boxes are {box_depth} slice(s) deep but {self.path} takes {channels}; "
                f"use training data extracted with box depth {channels}"
            )


def load_starting_model(path: str | Path) -> StartingModel:
    """Open ``path`` (``.scnm``) as a network ready for training (train mode, gradients on)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"init={path}: no such model file; give a .scnm made by Ais or ais_torch")
    network, metadata = load_scnm(path)
    if not isinstance(network, AisArch):
        raise ConfigError(
            f"init={path}: its network ({metadata.arch or 'unknown architecture'}) matches no "
            "ais_torch architecture, so it cannot be trained here; it can still segment"
        )
    network.train()
    for parameter in network.parameters():
        parameter.requires_grad_(True)
    return StartingModel(network=network, metadata=metadata, path=path)
