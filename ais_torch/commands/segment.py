"""``ais-torch segment model=M.scnm data=TOMOS/ out=SEG/``: segment whole tomograms.

The shell: Hydra config → :func:`ais_torch.segmentation.batch.segment` → one line per failure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ais_torch.commands.shell import run_cli
from ais_torch.errors import ConfigError
from ais_torch.segmentation.batch import SegmentReport, segment

# -- command line --------------------------------------------------------------------------------
DATA_ALIAS = "data="
"""``data`` is also a config group of the training app (conf/data/), which Hydra would try to
load; on our command line ``data=...`` is therefore read as ``tomograms=...``."""


def _alias_argv(argv: Sequence[str]) -> list[str]:
    return [f"tomograms={a[len(DATA_ALIAS) :]}" if a.startswith(DATA_ALIAS) else a for a in argv]


def run_config(cfg: Any) -> SegmentReport:
    """Run :func:`segment` from the ``segment`` Hydra config (a DictConfig or a dict)."""
    from omegaconf import OmegaConf

    if not isinstance(cfg, dict):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    missing = [k for k in ("model", "tomograms", "out") if cfg.get(k) in (None, "", "???")]
    if missing:
        names = ", ".join("data" if k == "tomograms" else k for k in missing)
        raise ConfigError(
            f"missing {names}; e.g. python -m ais_torch.segment model=Membrane.scnm "
            "data=tomograms/ out=segmentations/"
        )
    z_range = cfg.get("z_range")
    return segment(
        cfg["model"],
        cfg["tomograms"],
        cfg["out"],
        mode=cfg["mode"],
        tta=cfg["tta"],
        batch_size=cfg.get("batch_size", "auto"),
        slab=cfg.get("slab", "auto"),
        dtype=cfg["dtype"],
        box_size=cfg.get("box_size"),
        overlap=cfg.get("overlap"),
        data_apix=cfg.get("data_apix"),
        model_apix=cfg.get("model_apix"),
        model_depth=cfg.get("model_depth"),
        z_range=z_range,
        overwrite=bool(cfg["overwrite"]),
        device=str(cfg["device"]),
        precision=str(cfg["precision"]),
        backend=str(cfg["backend"]),
        compile=bool(cfg["compile"]),
        channels_last=cfg.get("channels_last"),
        interactions=cfg.get("interactions"),
        postprocess="auto" if cfg.get("postprocess", True) else None,
        locks=bool(cfg["locks"]),
        prefetch=int(cfg["prefetch"]),
        progress=bool(cfg["progress"]),
    )


def _finish_cli(report: SegmentReport) -> None:
    """Failures: one ``error:`` line each, exit code 1 (the batch itself went on)."""
    if report.failed:
        for _, line in report.failed:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(report.failed)} tomogram(s) failed (listed above)", file=sys.stderr)
        raise SystemExit(1)


def _hydra_main(cfg: Any) -> None:
    run_cli(lambda: _finish_cli(run_config(cfg)))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ais_torch.segment key=value ...`` (Hydra overrides; ``--help`` lists them)."""
    import hydra

    from ais_torch.config import config_dir

    args = _alias_argv(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *args]
    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="segment")
    app(_hydra_main)()


if __name__ == "__main__":
    main()
