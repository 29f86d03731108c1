"""``ais-torch train +experiment=membrane``: train one model, save ``<title>.scnm``.

The Hydra entry point only resolves the run folder and calls :func:`train`, a plain function
that reads top to bottom: data → network → Lightning fit → model file → held-out Dice.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ais_torch.commands.shell import Key, hydra_defaults, hydra_main, render_help, run_cli
from ais_torch.config import config_dir
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch
    from ais_torch.training.finetune import StartingModel

log = logging.getLogger("ais_torch.train")
TUNABLE_HPARAMS = ("learning_rate", "lr_schedule", "loss", "bce_weight", "dice_weight")
"""Optimiser and loss keys of ``arch.`` that still apply when fine-tuning (``init=``)."""


@dataclass
class TrainResult:
    model: Any
    model_path: Path
    log_dir: Path | None
    dice: float | None
    metrics: dict[str, float]


def train(
    cfg: DictConfig, output_dir: str | Path, *, extra_callbacks: Sequence[Any] = ()
) -> TrainResult:
    """Train the model described by ``cfg`` and write it to ``<output_dir>/<title>.scnm``.

    ``extra_callbacks``: Lightning callbacks added to the config's (the napari widget's progress
    and cancel); one that raises stops the run before any model file is written.
    """
    import lightning as L
    import numpy as np
    import torch
    from hydra.utils import instantiate

    from ais_torch.training.finetune import load_starting_model
    from ais_torch.training.heldout import heldout_dice
    from ais_torch.training.sources import resolve_data

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")

    data = resolve_data(cfg.data, output_dir)
    start = load_starting_model(cfg.init) if cfg.get("init") else None
    overrides = start.data_overrides(cfg.datamodule) if start is not None else {}
    slab = _slab_network(cfg, start)  # a 3D slab net's depth sets its boxes', so it comes first
    if slab is not None:
        overrides["slab_depth"] = int(slab.depth)
    datamodule = instantiate(
        cfg.datamodule, scnt=data.scnt, tomograms=data.tomograms, labels=data.labels, **overrides
    )
    datamodule.setup("fit")
    log.info(datamodule.summary())

    if start is not None:
        if slab is None:
            start.check_depth(datamodule.box_depth, "the training data")
        model = start.network
        for key in TUNABLE_HPARAMS:  # the run's own optimiser settings, where given
            if cfg.arch.get(key) is not None:
                model.hparams[key] = cfg.arch[key]
        log.info("fine-tuning %s (%s)", start.path, model.title or model.arch_name)
    else:
        model = slab if slab is not None else instantiate(cfg.arch)
    if getattr(model, "emits_slab", False) and slab is None:
        raise ConfigError(
            f"{model.title or model.arch_name} is a 3D slab network built by a custom arch "
            "target; ais_torch trains slab networks built by ais_torch.archs.build (arch.name)"
        )
    arch_name = model.arch_name

    logger = None
    if cfg.get("logger") and cfg.logger.get("_target_"):
        logger = instantiate(cfg.logger)
    callbacks = build_callbacks(cfg, data.preview_source(), has_logger=logger is not None)
    callbacks += list(extra_callbacks)
    trainer_kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    trainer_kwargs["precision"] = resolve_precision(trainer_kwargs.get("precision"))
    verbose = bool(cfg.get("verbose", False))
    if trainer_kwargs.get("enable_model_summary") is None:
        trainer_kwargs["enable_model_summary"] = verbose
    quiet_lightning(not verbose)
    if float(cfg.data.val_fraction) == 0:
        trainer_kwargs.setdefault("limit_val_batches", 0)  # like the original: no validation
    trainer = L.Trainer(
        **trainer_kwargs,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
    )
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into exit(1); report it as Ctrl-C
            raise KeyboardInterrupt from None
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    model_path = output_dir / f"{cfg.title}.scnm"
    dice = None
    if trainer.is_global_zero:
        model = model.eval()  # evaluation runs where training ran; the file holds CPU tensors
        metadata = _metadata(cfg, model, arch_name, datamodule, metrics)
        from ais_torch.formats.scnm import save_scnm

        save_scnm(model_path, model, metadata)
        flat = metadata.model_depth == 1 or getattr(model, "emits_slab", False)
        if cfg.evaluate and data.eval_pairs and flat:
            threshold = float(cfg.threshold)
            pairs = data.eval_pairs
            scores = [heldout_dice(model, metadata, t, lab, threshold) for t, lab in pairs]
            dice = float(np.mean(scores))
    log_dir = Path(logger.log_dir) if logger is not None else None
    return TrainResult(
        model=model, model_path=model_path, log_dir=log_dir, dice=dice, metrics=metrics
    )


def _slab_network(cfg: DictConfig, start: StartingModel | None) -> AisArch | None:
    """The network when it is a 3D slab network (``emits_slab``), else ``None`` (then it is
    built after the data, as before, so 2D runs draw the same random numbers)."""
    from hydra.utils import instantiate

    from ais_torch.archs.registry import load

    if start is not None:
        return start.network if getattr(start.network, "emits_slab", False) else None
    arch = cfg.arch
    if arch.get("_target_") != "ais_torch.archs.build" or not arch.get("name"):
        return None
    if not getattr(load(str(arch.name)), "emits_slab", False):
        return None
    return instantiate(arch)


def build_callbacks(
    cfg: DictConfig, preview: tuple[Any, ...] | None, *, has_logger: bool
) -> list[Any]:
    """The ``callbacks`` group of the config, each built by Hydra (``_target_``).

    A ``_partial_: true`` callback (the prediction preview) needs the slice chosen from the
    data at run time: it gets ``preview`` = (tomogram, z, labels), and is left out when there
    is no preview slice or no logger to show it in.
    """
    from hydra.utils import instantiate

    made: list[Any] = []
    for node in (cfg.get("callbacks") or {}).values():
        if not node:
            continue
        callback = instantiate(node)
        if isinstance(callback, functools.partial):
            if preview is None or not has_logger:
                continue
            callback = callback(*preview)
        made.append(callback)
    return made


def quiet_lightning(quiet: bool) -> None:
    """Route Lightning's log lines through ours once; when ``quiet``, only its warnings.

    Lightning adds its own stderr handler when imported before logging is set up, so every
    line appeared twice under Hydra; its banner (GPU/TPU available), "Tip" lines and
    ``Trainer.fit stopped`` are INFO messages a user need not read on every run.
    """
    if logging.getLogger().handlers:  # logging is set up (Hydra): let it print each line once
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    for name in ("lightning.pytorch", "lightning.fabric"):
        level = logging.WARNING if quiet else logging.INFO
        logging.getLogger(f"{name}.utilities.rank_zero").setLevel(level)
    if quiet:  # raised inside Lightning with recent torch; nothing a user can act on
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")


LIGHTNING_PRECISION = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}


def resolve_precision(precision: str | int | None) -> str | int | None:
    """``"auto"``: Lightning's name for what :func:`~ais_torch.segmentation.backends.
    resolve_precision` picks for training here (bf16 where native, CPUs included); anything
    else goes to Lightning as given (``32-true``, ``bf16-mixed``, ...)."""
    if precision != "auto":
        return precision
    import torch

    from ais_torch.segmentation.backends import resolve_precision as one_rule

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return LIGHTNING_PRECISION[one_rule("auto", device, training=True)]


def _metadata(cfg: DictConfig, model: Any, arch_name: str, datamodule: Any, metrics: dict):
    from ais_torch.archs.base import count_params_keras
    from ais_torch.archs.presets import title_for_preset
    from ais_torch.formats.scnm import ORIGINAL_MODEL_ENUM, ModelMetadata

    hparams = dict(model.hparams)
    slab = bool(getattr(model, "emits_slab", False))
    title = title_for_preset(getattr(model, "preset", None)) or model.title or arch_name
    meta = ModelMetadata(
        title=str(cfg.title),
        colour=[float(c) for c in cfg.colour],
        apix=float(datamodule.apix),
        box_size=int(datamodule.box_size),
        model_depth=int(model.depth if slab else hparams.get("in_channels", 1)),
        z_jitter=int(datamodule.z_jitter) if slab else 0,
        model_enum=ORIGINAL_MODEL_ENUM.get(title, -1),
        arch=title,
        epochs=int(cfg.trainer.max_epochs),
        batch_size=int(cfg.data.batch_size),
        threshold=float(cfg.threshold),
        n_parameters=int(count_params_keras(model)),
        n_copies=int(cfg.data.n_copies),
        excess_negative=float(cfg.data.excess_negative),
        normalization=datamodule.model_normalization,
        loss=float(metrics.get("train/loss_epoch", metrics.get("train/loss", 0.0))),
        arch_name=arch_name,
        arch_hparams=hparams,
    )
    meta.info = meta.describe()
    meta.info_short = meta.info[len(meta.arch) :].strip()
    return meta


def _check(cfg: DictConfig) -> None:
    if cfg.get("title") in (None, ""):
        raise ConfigError("title is empty; set title=<name of the feature>")


KEYS = (
    Key("+experiment", "a ready recipe: membrane | carbon | antibody (demo data, tuned keys); "
        "the + adds it", "name", "+experiment=membrane"),
    Key("title", "model title: names <title>.scnm and later <tomo>__<title>.mrc", "name",
        "title=Ribosome"),
    Key("arch", "architecture preset from conf/arch/ (vggnet_s|m|l, unet_s|m|l, resnet, ...); "
        "its hyper-parameters as arch.<key>", "name", "arch=unet_s"),
    Key("data", "where boxes come from: demo (synthetic, no download) | annotations | scnt | "
        "copick", "name", "data=annotations"),
    Key("data.feature", "feature to learn (demo: membrane | carbon | antibody)", "name",
        "data.feature=carbon"),
    Key("data.tomograms", "data=annotations: tomogram files", "list of .mrc",
        "data.tomograms=[a.mrc,b.mrc]"),
    Key("data.labels", "data=annotations: one label volume per tomogram (0 negative, 1 feature, "
        "2 ignore)", "list of .mrc", "data.labels=[a_membrane.mrc,b_membrane.mrc]"),
    Key("data.scnt", "data=scnt: training sets from the original Ais or ais_torch", "list",
        "data.scnt=[64x64x1_10.00Apx_Membrane.scnt]"),
    Key("data.project", "data=copick: the copick project's config (labels: docs/copick.md)",
        "file", "data.project=project.json"),
    Key("data.labels_from", "data=copick: segmentation (the object's) | picks (spheres of its "
        "radius)", "name", "data.labels_from=picks"),
    Key("data.box_size", "training box size at the target pixel size (null = the .scnt's or "
        "init model's, else 64)", "pixels", "data.box_size=32"),
    Key("data.apix", "target pixel size (null = the .scnt's or init model's, else the "
        "tomograms' own)", "Å", "data.apix=20"),
    Key("data.stride", "box spacing on annotated slices (null = box_size / 2)", "pixels",
        "data.stride=16"),
    Key("data.sampling", "per_batch (the original's: a positive leads each batch) | copies",
        "name", "data.sampling=copies"),
    Key("data.n_copies", "epoch length: n_copies x (boxes // batch_size) batches", "copies",
        "data.n_copies=4"),
    Key("data.batch_size", "boxes per optimisation step (per GPU under DDP)", "boxes",
        "data.batch_size=16"),
    Key("data.val_fraction", "boxes held out for val/loss (the original: none)",
        "fraction 0-1", "data.val_fraction=0.1"),
    Key("data.voxel_size_A", "voxel size for tomograms whose header lacks one", "Å",
        "data.voxel_size_A=10"),
    Key("trainer", "Lightning hardware preset: default | cpu | gpu | ddp | slurm", "name",
        "trainer=gpu"),
    Key("trainer.max_epochs", "passes over the training boxes", "epochs",
        "trainer.max_epochs=10"),
    Key("trainer.precision", "32-true | bf16-mixed | 16-mixed | auto (bf16 where fast)", "",
        "trainer.precision=auto"),
    Key("trainer.devices", "number of GPUs/CPUs to use, or auto", "devices",
        "trainer.devices=2"),
    Key("logger", "tensorboard (curves and the preview image) | none", "name", "logger=none"),
    Key("colour", "RGB 0-1 for previews, overlays and renders", "RGB 0-1",
        "colour=[1.0,0.5,0.0]"),
    Key("seed", "seeds box sampling, augmentation and weight initialisation", "integer",
        "seed=1"),
    Key("threshold", "probability threshold of the held-out Dice (stored in the model)",
        "probability 0-1", "threshold=0.4"),
    Key("evaluate", "after training, segment the held-out tomograms and print the Dice", "bool",
        "evaluate=false"),
    Key("init", "fine-tune this model (ours or the original's .scnm): its network, weights, "
        "pixel size, box size and normalisation", "file", "init=Membrane.scnm"),
    Key("ckpt_path", "resume from a Lightning checkpoint instead of starting fresh", "file",
        "ckpt_path=last.ckpt"),
    Key("verbose", "also show Lightning's banner, tips, device lines and model summary", "bool",
        "verbose=true"),
    Key("hydra.run.dir", "the run folder (default outputs/train/<title>/<date_time>)", "folder",
        "hydra.run.dir=runs/membrane"),
)  # fmt: skip
"""The keys a user sets most, once: ``--help`` is rendered from it (docs/config.md: all)."""

USAGE = "usage: ais-torch train [+experiment=NAME] [key=value ...]"
ABOUT = """\
Train one model for one feature and write <run dir>/<title>.scnm, then (with held-out data)
print its Dice. Without arguments: a VGGNet M on the built-in demo data. Also runs as
python -m ais_torch.train. Every key: docs/config.md; --cfg job prints the composed config."""


def help_text(overrides: Sequence[str] = ()) -> str:
    """``ais-torch train --help`` (with ``+experiment=…``: that experiment's defaults)."""
    defaults = hydra_defaults(str(config_dir()), "train", KEYS, overrides)
    defaults.setdefault("+experiment", "none")
    return render_help(USAGE, ABOUT, KEYS, defaults=defaults)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    """Hydra shell: run folder from Hydra, one-line errors, a short summary at the end.

    The summary goes through the log, so ``train.log`` ends with it as the console does.
    """
    from hydra.core.hydra_config import HydraConfig

    def _run() -> None:
        _check(cfg)
        result = train(cfg, HydraConfig.get().runtime.output_dir)
        if result.dice is None and not result.model_path.exists():
            return  # a non-zero DDP rank
        log.info("model:        %s", result.model_path)
        if result.log_dir is not None:
            log.info("tensorboard:  tensorboard --logdir %s", result.log_dir)
        if result.dice is not None:
            feature, threshold = cfg.data.feature, cfg.threshold
            log.info("held-out Dice (%s, threshold %s): %.3f", feature, threshold, result.dice)

    run_cli(_run)


def main(argv: Sequence[str] | None = None) -> None:
    """``ais-torch train key=value ...`` (Hydra overrides; ``--help`` lists the main keys)."""
    hydra_main(argv, _hydra_main, help_text)


if __name__ == "__main__":
    main()
