"""``copick inference ais-torch``: discovered through copick's entry-point group, and it runs.

The entry point exists once the package is installed (``pip install -e ".[dev]" --no-deps``
refreshes it after pyproject.toml changes).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("copick")

import click
import copick
from click.testing import CliRunner
from copick_project import make_project, tomogram

from ais_torch.commands.copick_plugin import segment_command

GROUP = "copick.inference.commands"


def test_the_entry_point_is_declared_and_loads_our_command() -> None:
    (entry,) = [e for e in metadata.entry_points(group=GROUP) if e.name == "ais-torch"]
    assert entry.value == "ais_torch.commands.copick_plugin:segment_command"
    assert entry.load() is segment_command and isinstance(segment_command, click.Command)


def test_copick_lists_it_under_inference() -> None:
    from copick.cli.ext import load_plugin_commands

    assert "ais-torch" in [cmd.name for cmd, _ in load_plugin_commands("inference")]
    from copick.cli.cli import cli  # copick's CLI with its plugins added, as `copick` runs it

    result = CliRunner().invoke(cli, ["inference", "--help"])
    assert result.exit_code == 0 and "ais-torch" in result.output
    result = CliRunner().invoke(cli, ["inference", "ais-torch", "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output and "--model" in result.output


def test_it_writes_a_segmentation_into_the_project(tmp_path: Path) -> None:
    from ais_torch import archs
    from ais_torch.formats.scnm import ModelMetadata, save_scnm

    net = archs.build("eman2").eval()
    meta = ModelMetadata(
        title="Membrane", apix=10.0, arch_name=net.arch_name, arch_hparams=dict(net.hparams)
    )
    model = save_scnm(tmp_path / "m.scnm", net, meta)
    project = make_project(tmp_path / "proj", {"TS_001": {10.0: {"wbp": tomogram()}}})
    args = ["-c", str(project), "-m", str(model), "--device", "cpu", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(segment_command, args)
    assert result.exit_code == 0, result.output
    assert "1 segmentation(s) written" in result.output
    (seg,) = copick.from_file(str(project)).get_run("TS_001").segmentations
    assert seg.name == "membrane" and seg.numpy().dtype == np.uint8
    assert (tmp_path / "o" / "TS_001__Membrane.mrc").is_file()
    # bad input: one line, exit 1
    result = CliRunner().invoke(segment_command, [*args, "-r", "TS_404"])
    assert result.exit_code == 1 and "no run 'TS_404'" in result.output
