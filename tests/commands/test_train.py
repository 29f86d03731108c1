"""The training app: configs compose, a short run writes a loadable model and TensorBoard logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra_train import compose_train

from ais_torch import archs, load_model
from ais_torch.commands.train import train
from ais_torch.config import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
ARCH_CONFIGS = sorted(
    p.stem for p in (config_dir() / "arch").glob("*.yaml") if p.stem not in ("plugin", "base")
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_arch"

# A run that takes seconds on 2 CPU cores: one tiny demo tomogram (+1 held out), few steps;
# 128 px wide so the carbon recipe's 40 Å boxes (32 px = 128 nm) still fit.
TINY = [
    "data.demo.shape=[24,128,128]",
    "data.demo.n_train=1",
    "data.demo.annotated_slices=2",
    "data.box_size=32",
    "data.stride=32",
    "data.n_copies=1",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


_compose = compose_train


def test_experiments_exist_for_the_demo_features() -> None:
    assert {"membrane", "carbon", "antibody"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name: str, tmp_path: Path) -> None:
    cfg = _compose([f"+experiment={name}", f"paths.output_dir={tmp_path}"])
    assert cfg.data.feature == name
    assert cfg.title.lower() == name
    assert cfg.arch._target_ == "ais_torch.archs.build"
    assert cfg.logger.save_dir == str(tmp_path)


@pytest.mark.parametrize("name", ARCH_CONFIGS)
def test_every_arch_config_builds_the_named_preset(name: str) -> None:
    cfg = _compose([f"arch={name}", "paths.output_dir=."])
    assert cfg.arch.name == name
    assert name in archs.available()


def test_default_architecture_is_vggnet_m() -> None:
    assert _compose(["paths.output_dir=."]).arch.name == "vggnet_m"


def _event_tags(log_dir: Path) -> tuple[set[str], set[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    tags = acc.Tags()
    return set(tags["scalars"]), set(tags["images"])


@pytest.mark.slow
def test_short_training_writes_model_logs_and_dice(tmp_path: Path) -> None:
    cfg = _compose(["+experiment=membrane", "arch=unet_s", f"paths.output_dir={tmp_path}", *TINY])
    result = train(cfg, tmp_path)

    assert result.model_path == tmp_path / "Membrane.scnm"
    loaded = load_model(result.model_path)
    meta = loaded.metadata
    assert (meta.title, meta.arch, meta.arch_name, meta.framework) == (
        "Membrane",
        "UNet S",
        "unet",
        "ais_torch",
    )
    # the membrane recipe trains at 20 Å (bin 2 of the 10 Å demo): the file says so
    assert (meta.apix, meta.box_size, meta.n_parameters) == (20.0, 32, 922_881)
    # same predictions, bit for bit, from the file as from the trained model
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), result.model.eval()(x).numpy())

    scalars, images = _event_tags(result.log_dir)
    assert "train/loss_step" in scalars and "train/loss_epoch" in scalars
    assert "preview/input_prediction_label" in images
    assert result.dice is not None and 0.0 <= result.dice <= 1.0
    held_out = tmp_path / "demo" / "tomo_01.mrc"
    assert held_out.exists()
    # the printed Dice is what a user gets: segment (rescaled to 20 Å and back) + evaluate
    from ais_torch.commands.evaluate import evaluate_segmentation
    from ais_torch.segmentation.batch import segment

    segment(result.model_path, held_out, tmp_path / "seg", progress=False, verbose=False)
    truth = tmp_path / "demo" / "truth" / "tomo_01__membrane.mrc"
    scores = evaluate_segmentation(tmp_path / "seg" / "tomo_01__Membrane.mrc", truth, 0.5)
    assert result.dice == pytest.approx(scores["dice"], abs=1e-6)


@pytest.mark.slow
def test_third_party_architecture_trains_by_name(fake_dist, tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    fake_dist("tiny_arch", "0.1.0", project["entry-points"]["ais_torch.archs"], extra_path=EXAMPLE)
    cfg = _compose(
        ["arch=plugin", "arch.name=tiny_net", "logger=none", f"paths.output_dir={tmp_path}", *TINY]
    )
    result = train(cfg, tmp_path)
    meta = load_model(result.model_path).metadata
    assert meta.arch_name == "tiny_net"


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ais-torch train …``, run as ``python -m ais_torch train`` (what the script runs)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "ais_torch", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_command_line_runs_from_any_folder_and_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _run_cli(
        ["+experiment=carbon", "arch=eman2", f"hydra.run.dir={run_dir}", *TINY], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"model:        {run_dir / 'Carbon.scnm'}" in proc.stdout
    assert "tensorboard --logdir" in proc.stdout
    assert "held-out Dice (carbon" in proc.stdout
    # quiet by default: no Lightning banner, tips or summary table, and no line twice
    both = proc.stdout + proc.stderr
    for noise in ("GPU available", "TPU available", "Tip:", "Total params"):
        assert noise not in both, noise
    lines = [line for line in both.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), both
    # train.log ends as the console does: the model path, then the Dice
    log_lines = (run_dir / "train.log").read_text().splitlines()
    assert f"model:        {run_dir / 'Carbon.scnm'}" in log_lines[-3]
    assert "held-out Dice (carbon" in log_lines[-1]


def test_bad_data_gives_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mrc"
    proc = _run_cli(
        [
            "data=annotations",
            f"data.tomograms=[{missing}]",
            f"data.labels=[{missing}]",
            f"hydra.run.dir={tmp_path / 'run'}",
            "logger=none",
        ],
        tmp_path,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(missing) in last
    assert "Traceback" not in proc.stderr
