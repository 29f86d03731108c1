"""A full disk ends in one line per output, never SIGBUS; no ``.partial`` and no lock is left,
the batch lists the tomograms not done and a rerun with space back completes them."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ais_torch.errors import AisOutputError
from ais_torch.formats import atomic
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.mrc import write_volume
from ais_torch.segmentation.batch import segment

QUIET = {"progress": False, "verbose": False}
NO_SPACE = "no space left on device while writing {}; free space or choose another out="


def _no_space(*_args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_fails_each_output_in_one_line_and_a_rerun_completes(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "seg"
    with monkeypatch.context() as m:
        m.setattr(atomic.os, "posix_fallocate", _no_space)
        report = segment(tiny_scnm, tomo_dir, out, **QUIET)
    assert report.written == [] and len(report.failed) == 3
    for (tomo, line), i in zip(report.failed, range(3), strict=True):
        assert line == f"{tomo}: " + NO_SPACE.format(out / f"t{i}__Tiny.mrc")
    assert not out.exists() or list(out.iterdir()) == []  # no .partial, no lock
    again = segment(tiny_scnm, tomo_dir, out, **QUIET)  # space is back
    assert again.ok and len(again.written) == 3
    assert sorted(p.name for p in out.iterdir()) == [f"t{i}__Tiny.mrc" for i in range(3)]


def test_full_disk_while_writing_a_plain_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "picks.star"
    with pytest.raises(AisOutputError) as err, atomic_output(target) as tmp:
        tmp.write_text("half")
        _no_space()
    assert str(err.value) == NO_SPACE.format(target)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and a kernel that lets this process mount)."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_real_full_tmpfs_through_the_cli(small_tmpfs: Path, tiny_scnm: Path) -> None:
    """In a subprocess: a regression to SIGBUS kills it (exit -7), not the test runner."""
    tomos = small_tmpfs.parent / "tomos"
    rng = np.random.default_rng(0)
    shapes = {"a": (4, 32, 32), "b": (8, 256, 256), "c": (4, 32, 32)}  # b: 1 MiB as mode 6
    for name, shape in shapes.items():
        write_volume(
            tomos / f"{name}.mrc", rng.normal(size=shape).astype(np.float32), voxel_size_A=10.0
        )
    out = small_tmpfs / "seg"
    cmd = [sys.executable, "-m", "ais_torch", "segment", f"model={tiny_scnm}", f"data={tomos}"]
    cmd += [f"out={out}", "progress=false"]
    env = {**os.environ, "AIS_TORCH_DEBUG": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert done.returncode == 1, done.stderr
    assert errors == [f"error: {tomos / 'b.mrc'}: " + NO_SPACE.format(out / "b__Tiny.mrc")]
    assert done.stderr.splitlines()[-1] == "1 tomogram(s) failed (listed above)"
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a__Tiny.mrc", "c__Tiny.mrc"]
