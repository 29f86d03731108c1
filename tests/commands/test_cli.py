"""``ais-torch``: one console script, a verb per command, help from one table per verb, Ctrl-C."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from ais_torch import commands
from ais_torch.commands import shell
from ais_torch.config import config_dir

VERBS = ("train", "segment", "pick", "mesh", "view", "evaluate", "export", "inspect", "demo")

# verb → (key, unit) rows its --help must show: real keys with their real units
HELP_ROWS = {
    "train": [("data.box_size", "pixels"), ("data.apix", "Å"), ("verbose", "bool")],
    "segment": [("data", "file/folder"), ("tta", "1-8 orientations"), ("data_apix", "Å")],
    "pick": [("spacing", "Å"), ("size", "Å³"), ("threshold", "grey level 0-255")],
    "mesh": [("level", "probability or grey"), ("min_size", "voxels"), ("units", "nm")],
    "view": [("pick_radius", "nm"), ("voxel_size_A", "Å"), ("window", "pixels")],
    "evaluate": [("match_px", "voxels"), ("radius", "Å"), ("threshold", "grey level")],
    "export": [("model", "file"), ("opset", "version")],
    "inspect": [("info FILE", "file")],
    "demo": [("shape", "voxels"), ("n", "tomograms")],
}


def _help(verb: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = commands.main([verb, *extra, "--help"])
    assert code == 0
    return capsys.readouterr().out


def _row(text: str, key: str) -> str:
    """A key's help block: its first line and the indented lines after it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {key} "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return "\n".join(block)


def test_help_lists_every_verb_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        rows = [line for line in out.splitlines() if line.startswith(f"  {verb} ")]
        assert len(rows) == 1 and len(rows[0].split()) > 3, verb
    assert "python -m ais_torch.<verb>" in out


def test_console_script_and_module_are_the_same_command(tmp_path: Path) -> None:
    """``python -m ais_torch`` is the console script; the script is declared in pyproject."""
    proc = subprocess.run(
        [sys.executable, "-m", "ais_torch", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0 and all(f"  {v} " in proc.stdout for v in VERBS)
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["ais-torch"] == "ais_torch.commands:main"


def test_unknown_verb_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(["segmnet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "segment" in err


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help_lists_keys_with_units(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(verb, capsys)
    assert out.startswith(f"usage: ais-torch {verb}")
    for key, unit in HELP_ROWS[verb]:
        row = _row(out, key)
        assert f"unit: {unit}" in row, row
        assert "e.g. " in row, row


def test_segment_help_shows_data_not_tomograms(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help("segment", capsys)
    assert "tomograms: ???" not in out and "\n  tomograms " not in out
    assert "default: required" in _row(out, "data")
    assert "default: 1" in _row(out, "tta")


def test_train_help_shows_the_experiment_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    plain = _help("train", capsys)
    assert "default: vggnet_m" in _row(plain, "arch") and "else 64" in _row(plain, "data.box_size")
    membrane = _help("train", capsys, "+experiment=membrane")
    assert "default: unet_s" in _row(membrane, "arch")
    assert "default: 20.0" in _row(membrane, "data.apix")


@pytest.mark.parametrize(("verb", "root"), [("segment", "segment"), ("pick", "pick")])
def test_help_table_covers_every_config_key(verb: str, root: str) -> None:
    """One table per command: every key of the command's YAML has a --help row."""
    import importlib

    module = importlib.import_module(f"ais_torch.commands.{verb}")
    raw = OmegaConf.to_container(OmegaConf.load(config_dir() / root / f"{root}.yaml"))
    flat = {
        f"{k}.{sub}" if isinstance(v, dict) else k: None
        for k, v in raw.items()
        for sub in (v if isinstance(v, dict) else [None])
        if k not in ("defaults", "hydra")
    }
    table = {k.name for k in module.KEYS}
    assert set(flat) <= table, set(flat) - table


@pytest.mark.parametrize("verb", ["mesh", "view", "evaluate", "export", "demo"])
def test_small_commands_parse_the_keys_their_help_lists(verb: str) -> None:
    import importlib

    module = importlib.import_module(f"ais_torch.commands.{verb}")
    assert module._KEYS == tuple(k.name for k in module.KEYS)
    assert all(f"  {k.name} " in module.USAGE for k in module.KEYS)


def test_segment_data_is_a_plain_key_of_its_own_config_root() -> None:
    """No argv rewriting: ``data=`` composes as is (the training app's group is not in sight)."""
    import ais_torch.commands.segment as segment_cmd

    assert not hasattr(segment_cmd, "_alias_argv")
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir() / "segment"), version_base="1.3"):
        cfg = compose("segment", overrides=["model=m.scnm", "data=tomos/", "out=seg/"])
    assert cfg.data == "tomos/" and "tomograms" not in cfg
    assert cfg.interactions.competition is True


def test_segment_passes_data_through_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ais_torch.commands.segment as segment_cmd
    import ais_torch.segmentation.batch as batch

    seen: dict[str, object] = {}

    def fake_segment(model: object, data: object, out: object, **kw: object) -> object:
        seen.update(model=model, data=data, out=out)
        return batch.SegmentReport()

    monkeypatch.setattr(batch, "segment", fake_segment)
    monkeypatch.setattr(segment_cmd, "_finish_cli", lambda report: None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ais-torch segment"])
    GlobalHydra.instance().clear()
    segment_cmd.main(["model=m.scnm", "data=tomos/*.mrc", "out=seg/"])
    assert seen == {"model": "m.scnm", "data": "tomos/*.mrc", "out": "seg/"}
    assert sys.argv[1:] == ["model=m.scnm", "data=tomos/*.mrc", "out=seg/"]


def test_ctrl_c_is_one_line_and_exit_code_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        shell.run_cli(interrupted)
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [shell.INTERRUPTED]


def test_ctrl_c_in_a_hydra_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ais_torch.commands.segment as segment_cmd

    def interrupted(cfg: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(segment_cmd, "run_config", interrupted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ais-torch segment"])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as stop:
        segment_cmd.main(["model=m.scnm", "data=t.mrc", "out=seg"])
    assert stop.value.code == 130
    assert capsys.readouterr().err.splitlines() == [shell.INTERRUPTED]


def test_failed_pick_leaves_no_output_folder(tmp_path: Path) -> None:
    env = {**os.environ, "AIS_TORCH_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "ais_torch", "pick", "data=missing/", "feature=A", "out=picks"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "missing" in proc.stderr and "picking" not in proc.stderr  # before any progress bar
    assert not (tmp_path / "picks").exists()


def test_python_m_verb_keeps_working(tmp_path: Path) -> None:
    for module in ("ais_torch.mesh", "ais_torch.models"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=tmp_path
        )
        assert proc.returncode == 0 and proc.stdout.startswith("usage: ais-torch"), module
    bare = subprocess.run(
        [sys.executable, "-m", "ais_torch.mesh"], capture_output=True, text=True, cwd=tmp_path
    )
    assert bare.returncode == 2  # no arguments: the usage, and a non-zero exit
