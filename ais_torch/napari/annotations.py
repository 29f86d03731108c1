"""Annotation bookkeeping without Qt: which slices are painted, how many boxes they give, and
how to save them so ``ais-torch train data=annotations …`` reproduces the widget's run.

The convention is ``data=annotations``'s: on a slice with any non-zero label, ``1`` = feature,
``2`` = ignore and ``0`` = negative; slices with no label are not used. Counts come from
:func:`ais_torch.training.boxes.count_boxes`, the tiling that training itself uses.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats.naming import result_name
from ais_torch.napari.io import save_labels
from ais_torch.training.boxes import count_boxes


@dataclass
class Annotated:
    """One tomogram's labels for a feature, with the geometry to save them."""

    tomogram: Path
    labels: np.ndarray
    voxel_size_A: float
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tomogram_shape: tuple[int, ...] | None = None

    def check(self) -> None:
        """Labels must be drawn on this tomogram's grid (one clear error otherwise)."""
        shape = self.tomogram_shape
        if shape is not None and tuple(self.labels.shape) != tuple(shape):
            raise AisInputError(
                f"{self.tomogram}: labels have shape {tuple(self.labels.shape)} but the "
                f"tomogram has {tuple(shape)} (z, y, x); add the feature again on this tomogram"
            )


@dataclass
class Summary:
    """What the annotations give at one box size and pixel size."""

    slices: dict[str, list[int]] = field(default_factory=dict)
    """tomogram name → annotated z."""
    positive: int = 0
    negative: int = 0

    @property
    def n_slices(self) -> int:
        return sum(len(z) for z in self.slices.values())

    def text(self) -> str:
        """One line: ``3 slices (tomo_00: 10, 20, 30) → 40 positive, 60 negative boxes``."""
        if not self.n_slices:
            return "no annotated slice yet: paint 1 (feature) and 0/2 on a slice"
        parts = "; ".join(
            f"{name}: {', '.join(map(str, zs))}" for name, zs in self.slices.items() if zs
        )
        return (
            f"{self.n_slices} slice{'s' * (self.n_slices != 1)} ({parts}) → "
            f"{self.positive} positive, {self.negative} negative boxes"
        )


def annotated_slices(labels: np.ndarray) -> list[int]:
    """z of the slices holding any non-zero label."""
    n_z = int(labels.shape[0])
    return [int(z) for z in np.flatnonzero(np.asarray(labels).reshape(n_z, -1).any(axis=1))]


def summarise(
    items: list[Annotated], *, box_size: int, apix: float | None = None, stride: int | None = None
) -> Summary:
    """Annotated slices and positive/negative training boxes over every tomogram of a feature."""
    summary = Summary()
    for item in items:
        item.check()
        counts = count_boxes(
            item.labels,
            voxel_size_A=item.voxel_size_A,
            box_size=box_size,
            apix=apix,
            stride=stride,
            name=f"labels of {item.tomogram.name}",
        )
        summary.slices[item.tomogram.name] = sorted(counts)
        summary.positive += sum(p for p, _ in counts.values())
        summary.negative += sum(n for _, n in counts.values())
    return summary


def save_annotations(items: list[Annotated], feature: str, folder: str | Path) -> list[Path]:
    """Write each label volume as ``<folder>/<tomo>__<feature>.mrc`` (atomic, int8)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in items:
        item.check()
        if not annotated_slices(item.labels):
            continue
        path = folder / result_name(item.tomogram, feature)
        written.append(
            save_labels(path, item.labels, voxel_size_A=item.voxel_size_A, origin_A=item.origin_A)
        )
    if not written:
        raise AisInputError(
            f"feature {feature!r}: no annotated slice on any tomogram; paint the feature as 1 "
            "(and background as 0, unsure as 2) on at least one slice"
        )
    return written


@dataclass
class TrainSettings:
    """The widget's training choices; each is an ``ais-torch train`` key."""

    title: str
    arch: str = "unet_s"
    box_size: int = 64
    apix: float | None = None
    epochs: int = 10
    batch_size: int = 16
    colour: tuple[float, float, float] = (0.26, 0.84, 0.64)
    seed: int = 0


def train_overrides(
    settings: TrainSettings, tomograms: list[Path], labels: list[Path]
) -> list[str]:
    """Hydra overrides of ``conf/train.yaml`` for this run (the widget composes them; the printed
    command line is the same list)."""
    if len(tomograms) != len(labels) or not tomograms:
        raise AisInputError("train: give one saved label volume per annotated tomogram")

    def paths(ps: list[Path]) -> str:
        return "[" + ",".join(_quoted(str(Path(p).resolve())) for p in ps) + "]"

    colour = ",".join(f"{c:.3g}" for c in settings.colour)
    overrides = [
        "data=annotations",
        f"data.tomograms={paths(tomograms)}",
        f"data.labels={paths(labels)}",
        f"title={_quoted(settings.title)}",
        *arch_overrides(settings.arch),
        f"data.box_size={int(settings.box_size)}",
        f"data.batch_size={int(settings.batch_size)}",
        f"trainer.max_epochs={int(settings.epochs)}",
        f"colour=[{colour}]",
        f"seed={int(settings.seed)}",
        "logger=none",
        "evaluate=false",
    ]
    if settings.apix is not None:
        overrides.append(f"data.apix={float(settings.apix):g}")
    return overrides


def arch_overrides(arch: str) -> list[str]:
    """``arch=<preset>`` for a ``conf/arch`` file; an installed architecture without one (a
    plugin's entry point) is ``arch=plugin arch.name=<name>``, as ``ais-torch train`` wants."""
    from ais_torch.config import config_dir

    if arch != "plugin" and (config_dir() / "arch" / f"{arch}.yaml").is_file():
        return [f"arch={arch}"]
    return ["arch=plugin", f"arch.name={_quoted(arch)}"]


def _quoted(value: str) -> str:
    """A Hydra string value: plain when it is safe, else single-quoted."""
    if value and all(c.isalnum() or c in "/._-+" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def train_command(overrides: list[str], run_dir: str | Path | None = None) -> str:
    """The shell line that reproduces the widget's training run."""
    words = ["ais-torch", "train", *overrides]
    if run_dir is not None:
        words.append(f"hydra.run.dir={Path(run_dir).resolve()}")
    return " ".join(shlex.quote(w) for w in words)
