"""Locks never block for ever: owner line, heartbeat, take-over after the timeout or a dead
local pid (with a line saying so), and ``segment`` exits 75 listing outputs left busy."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from ais_torch.commands.segment import EXIT_BUSY, _finish_cli
from ais_torch.errors import ConfigError
from ais_torch.segmentation.batch import segment
from ais_torch.segmentation.scheduling import (
    OutputLock,
    boot_id,
    lock_path,
    lock_timeout_s,
    read_owner,
)


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_lock_names_its_owner_and_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIS_TORCH_LOCK_TIMEOUT_S", "0.5")  # heartbeat every 0.1 s
    lock = OutputLock(tmp_path / "a__M.mrc")
    assert lock.acquire()
    try:
        pid, host, started, boot = lock.path.read_text().split()
        assert (int(pid), host, boot) == (os.getpid(), socket.gethostname(), boot_id())
        assert abs(float(started) - time.time()) < 60
        _age(lock.path, 100)
        time.sleep(0.4)
        assert time.time() - lock.path.stat().st_mtime < 1  # touched again
    finally:
        lock.release()
    assert not lock.path.exists()


def test_other_hosts_lock_is_taken_over_only_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "a__M.mrc"
    monkeypatch.setattr(socket, "gethostname", lambda: "node-b")
    theirs = OutputLock(out)
    assert theirs.acquire()  # a run on node-b (its pid means nothing on node-a)
    theirs.held = False  # node-b dies: nobody releases it, nobody touches it
    from ais_torch.segmentation.scheduling import HEARTBEAT

    HEARTBEAT.discard(theirs.path)
    monkeypatch.setattr(socket, "gethostname", lambda: "node-a")
    said: list[str] = []
    mine = OutputLock(out, say=said.append)
    assert not mine.acquire() and said == []  # fresh heartbeat: busy
    _age(theirs.path, 599)
    assert not mine.acquire()
    _age(theirs.path, 700)
    assert mine.acquire()
    try:
        assert len(said) == 1 and str(lock_path(out)) in said[0]
        assert "taken over from pid" in said[0] and "on node-b" in said[0]
        assert "no heartbeat for 700 s > AIS_TORCH_LOCK_TIMEOUT_S=600" in said[0]
        assert read_owner(mine.path).host == "node-a"  # type: ignore[union-attr]
    finally:
        mine.release()


def test_dead_local_pid_is_taken_over_at_once(tmp_path: Path) -> None:
    out = tmp_path / "a__M.mrc"
    dead = _dead_pid()
    lock_path(out).write_text(f"{dead} {socket.gethostname()} {time.time():.0f} {boot_id()}\n")
    said: list[str] = []
    lock = OutputLock(out, say=said.append)
    assert lock.acquire()
    lock.release()
    assert len(said) == 1 and f"its process {dead} is gone" in said[0]


def test_a_lock_taken_over_from_us_is_not_deleted_by_us(tmp_path: Path) -> None:
    out = tmp_path / "a__M.mrc"
    first = OutputLock(out)
    assert first.acquire()
    first.path.unlink()  # thought dead and taken over by another run
    lock_path(out).write_text("1 elsewhere 0 -\n")
    first.release()
    assert lock_path(out).read_text() == "1 elsewhere 0 -\n"


def test_bad_timeout_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIS_TORCH_LOCK_TIMEOUT_S", "ten")
    with pytest.raises(ConfigError, match="AIS_TORCH_LOCK_TIMEOUT_S='ten' is not a positive"):
        lock_timeout_s()


def test_segment_exits_75_and_lists_outputs_left_busy(
    tmp_path: Path,
    tomo_dir: Path,
    tiny_scnm: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "seg"
    out.mkdir()
    target = out / "t0__Tiny.mrc"
    lock_path(target).write_text(f"{os.getpid()} {socket.gethostname()} 0 {boot_id()}\n")
    report = segment(tiny_scnm, tomo_dir / "t0.mrc", out, progress=False, verbose=False)
    assert report.busy == [target] and report.written == []
    with pytest.raises(SystemExit) as stop:
        _finish_cli(report)
    assert stop.value.code == EXIT_BUSY
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"busy: {target} (locked by pid {os.getpid()} on ")
    assert "last heartbeat" in err[0] and "AIS_TORCH_LOCK_TIMEOUT_S" in err[-1]
    lock_path(target).unlink()
