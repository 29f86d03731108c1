"""Turn the ``data`` config into concrete files: generate the demo, check the user's lists,
build labels from a copick project.

Kept apart from the DataModule so that the module only ever sees file paths (or, for tomograms
that are not files of their own, a :class:`LazyTomogram`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import ConfigError
from ais_torch.formats.mrc import Volume, read_volume

if TYPE_CHECKING:
    from omegaconf import DictConfig

DEMO_FEATURES = ("membrane", "carbon", "antibody")


class LazyTomogram:
    """A tomogram that is not a file of its own (a copick run's zarr store), opened when its
    boxes are cut; ``name`` stands for the path in box sources and messages.

    A plain class, not a dataclass: Hydra's ``instantiate`` would turn a dataclass handed to
    the data module into a config. Picklable when ``opener`` is (DDP, workers).
    """

    def __init__(self, name: str, opener: Callable[[], Volume]) -> None:
        self.name = name
        self._opener = opener

    def open(self) -> Volume:
        return dataclasses.replace(self._opener(), path=Path(self.name))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"LazyTomogram({self.name!r})"


TomogramSource = str | os.PathLike | LazyTomogram


def open_volume(
    source: TomogramSource, *, voxel_size_A: float | None = None, check_finite: bool = False
) -> Volume:
    """A training or held-out tomogram: an MRC file read memory-mapped, or a lazy one opened."""
    if isinstance(source, LazyTomogram):
        return source.open()
    return read_volume(source, voxel_size_A=voxel_size_A, check_finite=check_finite)


@dataclass
class ResolvedData:
    """The files one training run uses."""

    scnt: list[str] = field(default_factory=list)
    tomograms: list[str | LazyTomogram] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    eval_pairs: list[tuple[Path | LazyTomogram, Path]] = field(default_factory=list)
    """(tomogram, dense 0/1 ground truth) pairs never trained on, for the Dice at the end."""

    def preview_source(self) -> tuple[Path | LazyTomogram, int, Path] | None:
        """(tomogram, slice, labels) to show in TensorBoard every epoch: the first held-out
        tomogram, else the first training one, at its middle annotated slice."""
        if self.eval_pairs:
            tomo, label = self.eval_pairs[0]
        elif self.tomograms:
            tomo, label = _source(self.tomograms[0]), Path(self.labels[0])
        else:
            return None
        labels = read_volume(label, check_finite=False).data
        n_z = labels.shape[0]
        annotated = np.flatnonzero(np.asarray(labels).reshape(n_z, -1).max(axis=1))
        z = int(annotated[len(annotated) // 2]) if len(annotated) else n_z // 2
        return _source(tomo), z, Path(label)


def _source(value: TomogramSource) -> Path | LazyTomogram:
    return value if isinstance(value, LazyTomogram) else Path(value)


def resolve_data(cfg: DictConfig, output_dir: Path) -> ResolvedData:
    """Files for ``cfg.source``: ``demo`` (generated now), ``annotations``, ``scnt`` or
    ``copick`` (labels written under ``output_dir``, tomograms read from the project)."""
    source = str(cfg.source)
    if source == "demo":
        return _demo(cfg, output_dir / "demo")
    if source == "copick":
        from ais_torch.training.copick_labels import resolve_copick

        return resolve_copick(cfg, output_dir)
    evals = list(zip(map(Path, cfg.eval_tomograms), map(Path, cfg.eval_labels), strict=False))
    if len(cfg.eval_tomograms) != len(cfg.eval_labels):
        raise ConfigError("data.eval_tomograms and data.eval_labels must have the same length")
    if source == "annotations":
        tomos, labels = [str(p) for p in cfg.tomograms], [str(p) for p in cfg.labels]
        if not tomos or len(tomos) != len(labels):
            raise ConfigError(
                f"data.tomograms ({len(tomos)}) and data.labels ({len(labels)}) must list one "
                "label volume per tomogram"
            )
        return ResolvedData(tomograms=tomos, labels=labels, eval_pairs=evals)
    if source == "scnt":
        if not cfg.scnt:
            raise ConfigError("data.scnt is empty; give data.scnt=[path/to/set.scnt]")
        return ResolvedData(scnt=[str(p) for p in cfg.scnt], eval_pairs=evals)
    raise ConfigError(f"data.source={source!r}; use demo, annotations, scnt or copick")


def _demo(cfg: DictConfig, folder: Path) -> ResolvedData:
    from ais_torch.training.synthetic import write_demo

    feature = str(cfg.feature)
    if feature not in DEMO_FEATURES:
        raise ConfigError(
            f"data.feature={feature!r} is not in the demo; use one of {DEMO_FEATURES}"
        )
    demo = cfg.demo
    n_train, n_eval = int(demo.n_train), int(demo.n_eval)
    write_demo(
        folder,
        n_tomograms=n_train + n_eval,
        seed=int(demo.seed),
        shape=tuple(int(n) for n in demo.shape),
        annotated_slices=int(demo.annotated_slices),
    )
    names = [f"tomo_{i:02d}" for i in range(n_train + n_eval)]
    tomos = [folder / f"{n}.mrc" for n in names]
    return ResolvedData(
        tomograms=[str(t) for t in tomos[:n_train]],
        labels=[str(folder / "annotations" / f"{n}__{feature}.mrc") for n in names[:n_train]],
        eval_pairs=[
            (tomos[i], folder / "truth" / f"{names[i]}__{feature}.mrc")
            for i in range(n_train, n_train + n_eval)
        ],
    )
