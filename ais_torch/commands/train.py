"""``python -m ais_torch.train +experiment=membrane``: train one model, save ``<title>.scnm``.

The Hydra entry point only resolves the run folder and calls :func:`train`, a plain function
that reads top to bottom: data → network → Lightning fit → model file → held-out Dice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ais_torch.commands.shell import run_cli
from ais_torch.config import config_dir
from ais_torch.errors import ConfigError

log = logging.getLogger("ais_torch.train")


@dataclass
class TrainResult:
    model: Any
    model_path: Path
    log_dir: Path | None
    dice: float | None
    metrics: dict[str, float]


def train(cfg: DictConfig, output_dir: str | Path) -> TrainResult:
    """Train the model described by ``cfg`` and write it to ``<output_dir>/<title>.scnm``."""
    import lightning as L
    import numpy as np
    import torch
    from hydra.utils import instantiate

    from ais_torch.training.callbacks import PredictionPreview
    from ais_torch.training.datamodule import AisDataModule
    from ais_torch.training.sources import resolve_data

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")

    data = resolve_data(cfg.data, output_dir)
    datamodule = AisDataModule(
        scnt=data.scnt,
        tomograms=data.tomograms,
        labels=data.labels,
        feature=str(cfg.data.feature),
        box_size=int(cfg.data.box_size),
        apix=cfg.data.apix,
        stride=cfg.data.stride,
        n_copies=int(cfg.data.n_copies),
        excess_negative=float(cfg.data.excess_negative),
        batch_size=int(cfg.data.batch_size),
        val_fraction=float(cfg.data.val_fraction),
        num_workers=int(cfg.data.num_workers),
        seed=int(cfg.seed),
        voxel_size_A=cfg.data.voxel_size_A,
    )
    datamodule.setup("fit")
    log.info(datamodule.summary())

    model = instantiate(cfg.arch)
    arch_name = model.arch_name

    logger = None
    if cfg.get("logger") and cfg.logger.get("_target_"):
        logger = instantiate(cfg.logger)
    callbacks: list[L.Callback] = []
    preview = data.preview_slice()
    if preview is not None and logger is not None:
        callbacks.append(PredictionPreview(preview[0], preview[1], tuple(cfg.colour)))

    trainer_kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    trainer_kwargs["precision"] = resolve_precision(trainer_kwargs.get("precision"))
    if float(cfg.data.val_fraction) == 0:
        trainer_kwargs.setdefault("limit_val_batches", 0)  # like the original: no validation
    trainer = L.Trainer(
        **trainer_kwargs,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    model_path = output_dir / f"{cfg.title}.scnm"
    dice = None
    if trainer.is_global_zero:
        model = model.eval()  # evaluation runs where training ran; the file holds CPU tensors
        metadata = _metadata(cfg, model, arch_name, datamodule, metrics)
        from ais_torch.formats.scnm import save_scnm

        save_scnm(model_path, model, metadata)
        if cfg.evaluate and data.eval_pairs and metadata.model_depth == 1:
            threshold = float(cfg.threshold)
            scores = [_dice_on(model, metadata, t, lab, threshold) for t, lab in data.eval_pairs]
            dice = float(np.mean(scores))
    log_dir = Path(logger.log_dir) if logger is not None else None
    return TrainResult(
        model=model, model_path=model_path, log_dir=log_dir, dice=dice, metrics=metrics
    )


def resolve_precision(precision: str | int | None) -> str | int | None:
    """``"auto"``: bf16 mixed precision where the hardware runs it fast, else full float32.

    bf16 halves training time on GPUs since Ampere and on CPUs with AVX512-BF16/AMX; elsewhere
    it is emulated and slower, so ``auto`` falls back to ``32-true`` there.
    """
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    try:
        fast_cpu_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        fast_cpu_bf16 = False
    return "bf16-mixed" if fast_cpu_bf16 else "32-true"


def _metadata(cfg: DictConfig, model: Any, arch_name: str, datamodule: Any, metrics: dict):
    from ais_torch.archs.base import count_params_keras
    from ais_torch.archs.presets import title_for_preset
    from ais_torch.formats.scnm import ORIGINAL_MODEL_ENUM, ModelMetadata

    hparams = dict(model.hparams)
    title = title_for_preset(getattr(model, "preset", None)) or model.title or arch_name
    meta = ModelMetadata(
        title=str(cfg.title),
        colour=[float(c) for c in cfg.colour],
        apix=float(datamodule.apix),
        box_size=int(datamodule.box_size),
        model_depth=int(hparams.get("in_channels", 1)),
        model_enum=ORIGINAL_MODEL_ENUM.get(title, -1),
        arch=title,
        epochs=int(cfg.trainer.max_epochs),
        batch_size=int(cfg.data.batch_size),
        threshold=float(cfg.threshold),
        n_parameters=int(count_params_keras(model)),
        n_copies=int(cfg.data.n_copies),
        excess_negative=float(cfg.data.excess_negative),
        loss=float(metrics.get("train/loss_epoch", metrics.get("train/loss", 0.0))),
        arch_name=arch_name,
        arch_hparams=hparams,
    )
    meta.info = meta.describe()
    meta.info_short = meta.info[len(meta.arch) :].strip()
    return meta


def _dice_on(model: Any, metadata: Any, tomogram: Path, truth: Path, threshold: float) -> float:
    """Dice of ``tomogram`` segmented the way ``segment`` does it, against ``truth``.

    Why the segment path: a model trained at another pixel size (``data.apix``) or with global
    normalisation must be scored on what users will get — rescaled and normalised per its
    metadata — not on raw slices at the tomogram's pixel size.
    """
    from ais_torch.formats.mrc import read_volume
    from ais_torch.segmentation.preprocess import segment_like_ais
    from ais_torch.segmentation.preview import dice

    volume = read_volume(tomogram)
    labels = read_volume(truth, check_finite=False)
    model.metadata = metadata
    grey = segment_like_ais(model, volume.data, voxel_size_A=volume.voxel_size_A, batch_size=4)
    return dice(grey / 255.0, labels.data, threshold=threshold)


def _check(cfg: DictConfig) -> None:
    if cfg.get("title") in (None, ""):
        raise ConfigError("title is empty; set title=<name of the feature>")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra shell: run folder from Hydra, one-line errors, a short summary at the end."""
    from hydra.core.hydra_config import HydraConfig

    def _run() -> None:
        _check(cfg)
        result = train(cfg, HydraConfig.get().runtime.output_dir)
        if result.dice is None and not result.model_path.exists():
            return  # a non-zero DDP rank
        print(f"model:        {result.model_path}")
        if result.log_dir is not None:
            print(f"tensorboard:  tensorboard --logdir {result.log_dir}")
        if result.dice is not None:
            print(
                f"held-out Dice ({cfg.data.feature}, threshold {cfg.threshold}): {result.dice:.3f}"
            )

    run_cli(_run)


if __name__ == "__main__":
    main()
