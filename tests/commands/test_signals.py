"""SIGTERM, SIGHUP and Ctrl-C stop ``ais-torch segment`` cleanly: one line, 128 + signal, no
partial file and no lock left, and a rerun resumes to byte-identical outputs.

One real ``segment`` process is stopped by SIGTERM mid-write and resumed; SIGHUP and Ctrl-C go
through the same ``run_cli`` in this process (a subprocess each would only add start-up time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ais_torch import archs
from ais_torch.commands.shell import run_cli
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnm import ModelMetadata, save_scnm

CHILD = """
import sys, time
from ais_torch.formats import mrc
_write, delay = mrc.VolumeWriter.write, float(sys.argv[1])
def slow(self, z, values):  # slow enough to be caught mid-write
    time.sleep(delay)
    _write(self, z, values)
mrc.VolumeWriter.write = slow
from ais_torch.commands import main
sys.argv = ['ais-torch', *sys.argv[2:]]
sys.exit(main())
"""


def _default_signals() -> None:
    """The child starts with default handlers even when pytest runs in the background (where
    the shell sets SIGINT to ignored) or under nohup."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _start(folder: Path, out: str, delay: float) -> subprocess.Popen[str]:
    args = [f"model={folder / 'Tiny.scnm'}", f"data={folder / 'tomos'}", f"out={out}"]
    args += ["slab=1", "progress=false"]
    env = {**os.environ, "AIS_TORCH_DEBUG": ""}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(delay), "segment", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=120)
    return proc.returncode, [line for line in err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small tomograms, a tiny model, and the uninterrupted run's outputs in ``ref``
    (the command's own config and code, in this process)."""
    from hydra import compose, initialize_config_dir

    from ais_torch.commands.segment import run_config
    from ais_torch.config import config_dir

    folder = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        vol = rng.normal(size=(6, 32, 40)).astype(np.float32)
        write_volume(folder / "tomos" / f"{name}.mrc", vol, voxel_size_A=10.0)
    net = archs.build("unet_s", encoder=[[4]], bottleneck=[8], decoder=[[4]]).eval()
    meta = ModelMetadata(
        title="Tiny", apix=10.0, arch_name=net.arch_name, arch_hparams=dict(net.hparams)
    )
    save_scnm(folder / "Tiny.scnm", net, meta)
    overrides = [f"model={folder / 'Tiny.scnm'}", f"data={folder / 'tomos'}"]
    overrides += [f"out={folder / 'ref'}", "slab=1", "progress=false"]
    with initialize_config_dir(str(config_dir() / "segment"), version_base="1.3"):
        assert run_config(compose("segment", overrides=overrides)).ok
    return folder


def test_sigterm_mid_write_cleans_up_and_a_rerun_resumes_identically(work: Path) -> None:
    out = work / "seg"
    proc = _start(work, out.name, 0.25)
    deadline = time.monotonic() + 90
    while not (out.is_dir() and any(p.name.endswith(".partial") for p in out.iterdir())):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no partial file appeared"
        time.sleep(0.02)
    assert any(p.name.endswith(".lock") for p in out.iterdir())
    proc.send_signal(signal.SIGTERM)
    code, lines = _finish(proc)
    assert code == 143, lines
    assert lines[-1] == "stopped by SIGTERM; files being written were not kept"
    assert all(ln.startswith(("segment:", "device:", "memory:")) for ln in lines[:-1]), lines
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in left if name.startswith(".")], left  # no .partial, no .lock
    code, lines = _finish(_start(work, out.name, 0.0))
    assert code == 0, lines
    ref = sorted((work / "ref").iterdir())
    assert [p.name for p in ref] == sorted(p.name for p in out.iterdir())
    for p in ref:
        assert _without_labels(out / p.name) == _without_labels(p), p.name


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGHUP, 129, "stopped by SIGHUP; files being written were not kept"),
        (signal.SIGTERM, 143, "stopped by SIGTERM; files being written were not kept"),
        (signal.SIGINT, 130, "interrupted (Ctrl-C); files being written were not kept"),
    ],
)
def test_run_cli_turns_a_signal_into_clean_up_and_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sig: signal.Signals,
    code: int,
    line: str,
) -> None:
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may ignore it
    old = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    seen: list[str] = []

    def work_until_signalled() -> None:
        with atomic_output(tmp_path / "out.mrc") as tmp:
            tmp.write_bytes(b"half")
            seen.append(tmp.name)
            os.kill(os.getpid(), sig)
            for _ in range(1000):  # the handler runs between these bytecodes
                time.sleep(0.01)

    try:
        with pytest.raises(SystemExit) as stop:
            run_cli(work_until_signalled)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers put back
    finally:
        signal.signal(signal.SIGINT, old_int)
        for s, h in old.items():
            signal.signal(s, h)
    assert stop.value.code == code
    assert capsys.readouterr().err.splitlines() == [line]
    assert seen and list(tmp_path.iterdir()) == []  # the partial file was removed


def _without_labels(path: Path) -> bytes:
    """The file's bytes but the header's text labels (mrcfile stamps the creation time there)."""
    data = path.read_bytes()
    return data[:224] + data[1024:]
