"""Sharing the work: ranks split the tomogram list, lock files keep independent runs apart.

* Under ``torchrun`` (``RANK``/``WORLD_SIZE``), SLURM (``SLURM_PROCID``/``SLURM_NTASKS``) or an
  initialised ``torch.distributed`` group, rank ``r`` of ``n`` takes tomograms ``r, r+n, ...``
  of the sorted list: no tomogram twice, no coordination needed.
* Two runs that know nothing of each other (two shells, two SLURM jobs) may point at the same
  output folder. Before computing an output, a run creates ``.<output name>.lock`` with
  ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ filesystems) holding one line
  ``<pid> <host> <start time, epoch s> <boot id>``; the other run sees the lock and moves on.
  While it works, the owner touches the lock every :func:`heartbeat_interval_s` (a daemon
  thread): the file's modification time is the heartbeat.
* A lock never blocks for ever. It is stale — left by a killed run — and taken over, with a
  line saying so, when its process is gone (same host and boot, dead pid: at once), its host
  rebooted, or its heartbeat is older than ``AIS_TORCH_LOCK_TIMEOUT_S`` (default 600 s: a
  SLURM job killed on one node and requeued on another, whose pid cannot be checked from here).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ais_torch.errors import ConfigError
from ais_torch.formats.atomic import _process_alive, output_error

T = TypeVar("T")

LOCK_PREFIX = "."
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT_ENV = "AIS_TORCH_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 600.0
"""Ten minutes without a heartbeat: far above the heartbeat interval (a minute at most) and
any pause of a busy node's file system, far below a night lost to a dead node's lock."""


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world_size: int = 1
    source: str = "single process"

    def __str__(self) -> str:
        return f"rank {self.rank}/{self.world_size} ({self.source})"


def detect_rank(environ: dict[str, str] | None = None) -> Rank:
    """This process's place among its peers, from torch.distributed or the launcher's env."""
    env = os.environ if environ is None else environ
    if environ is None:
        with contextlib.suppress(ImportError, RuntimeError):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                return Rank(dist.get_rank(), dist.get_world_size(), "torch.distributed")
    for rank_key, size_key, source in (
        ("RANK", "WORLD_SIZE", "torchrun"),
        ("SLURM_PROCID", "SLURM_NTASKS", "SLURM"),
    ):
        if rank_key in env and size_key in env:
            rank, size = int(env[rank_key]), int(env[size_key])
            if size >= 1 and 0 <= rank < size:
                return Rank(rank, size, source)
    return Rank()


def split_work(items: Sequence[T], rank: Rank) -> list[T]:
    """Round-robin share of ``items`` for ``rank`` (every item on exactly one rank)."""
    return list(items[rank.rank :: rank.world_size])


def lock_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(f"{LOCK_PREFIX}{output.name}{LOCK_SUFFIX}")


def lock_timeout_s() -> float:
    """``AIS_TORCH_LOCK_TIMEOUT_S`` (seconds without a heartbeat before a lock is taken over)."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(
            f"{LOCK_TIMEOUT_ENV}={text!r} is not a positive number of seconds "
            f"(e.g. {LOCK_TIMEOUT_ENV}=600); fix or unset it"
        )
    return value


def heartbeat_interval_s(timeout_s: float | None = None) -> float:
    """How often a held lock is touched: a fifth of the timeout, at most a minute."""
    timeout_s = lock_timeout_s() if timeout_s is None else timeout_s
    return max(0.05, min(60.0, timeout_s / 5))


def hostname() -> str:
    return socket.gethostname()


def boot_id() -> str:
    """This boot of this machine (Linux), so a pid is only compared within one boot."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "-"
    return "-"


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock, as its file says; ``heartbeat`` is the file's modification time."""

    pid: int | None
    host: str
    started: float | None
    boot: str
    heartbeat: float

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        since = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.started))
            if self.started
            else ""
        )
        who = f"pid {self.pid} on {self.host or 'an unknown host'}" if self.pid else "unreadable"
        return f"{who}{since}, last heartbeat {max(0.0, now - self.heartbeat):.0f} s ago"


def read_owner(path: Path) -> LockOwner | None:
    """The lock file's owner line (old two- or three-field locks too); None when it is gone."""
    try:
        st = os.stat(path)
        text = Path(path).read_text(errors="replace").split()
    except OSError:
        return None
    pid = int(text[0]) if text and text[0].isdigit() else None
    host = text[1] if len(text) > 1 else ""
    started = float(text[2]) if len(text) > 2 and text[2].replace(".", "", 1).isdigit() else None
    boot = text[3] if len(text) > 3 else ""
    return LockOwner(pid, host, started, boot, st.st_mtime)


def stale_reason(owner: LockOwner, timeout_s: float, now: float | None = None) -> str | None:
    """Why a lock may be taken over, or None while its owner may still be working."""
    now = time.time() if now is None else now
    age = now - owner.heartbeat
    if owner.pid is None:  # being written this very moment, or garbage
        return f"unreadable and untouched for {age:.0f} s" if age > min(60.0, timeout_s) else None
    if owner.host == hostname():
        if owner.boot and owner.boot != boot_id():
            return "its host has rebooted since"
        if not _process_alive(owner.pid):
            return f"its process {owner.pid} is gone"
    if age > timeout_s:
        return f"no heartbeat for {age:.0f} s > {LOCK_TIMEOUT_ENV}={timeout_s:g}"
    return None


class _Heartbeat:
    """One daemon thread per process touching every held lock (mtime = heartbeat)."""

    def __init__(self) -> None:
        self.held: set[Path] = set()
        self.guard = threading.Lock()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()

    def add(self, path: Path) -> None:
        with self.guard:
            self.held.add(path)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="ais-lock-heartbeat")
                self.thread.daemon = True
                self.thread.start()
        self.wake.set()  # re-read the interval (AIS_TORCH_LOCK_TIMEOUT_S may have changed)

    def discard(self, path: Path) -> None:
        with self.guard:
            self.held.discard(path)

    def _run(self) -> None:
        while True:
            self.wake.wait(heartbeat_interval_s(_safe_timeout()))
            self.wake.clear()
            with self.guard:
                paths = list(self.held)
            for path in paths:
                with contextlib.suppress(OSError):  # gone or unreachable: nothing to keep alive
                    os.utime(path)


def _safe_timeout() -> float:
    try:
        return lock_timeout_s()
    except ConfigError:
        return DEFAULT_LOCK_TIMEOUT_S


HEARTBEAT = _Heartbeat()


class OutputLock:
    """``.<name>.lock`` beside an output; ``acquire()`` is False when another live run holds it.

    ``say`` receives the line printed when a stale lock is taken over.
    """

    def __init__(self, output: Path, say: Callable[[str], None] | None = None) -> None:
        self.output = Path(output)
        self.path = lock_path(output)
        self.held = False
        self.say = say
        self._line = ""

    def acquire(self) -> bool:
        timeout = lock_timeout_s()
        for _ in range(2):  # second try after taking over a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._take_over_if_stale(timeout):
                    return False
                continue
            except OSError as err:
                raise output_error(self.output, err) from None
            line = f"{os.getpid()} {hostname()} {time.time():.6f} {boot_id()}\n"
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(line)
                self._line = line
            except OSError as err:  # a full disk: no half-written lock left behind
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise output_error(self.output, err) from None
            self.held = True
            HEARTBEAT.add(self.path)
            return True
        return False

    def _take_over_if_stale(self, timeout: float) -> bool:
        """Move a stale lock aside and delete it; True when the caller may create its own.

        The move (an atomic rename to a name of our own) and the inode check make sure that of
        two runs taking over the same stale lock, neither deletes the lock the other just made.
        """
        owner = read_owner(self.path)
        if owner is None:
            return True  # released meanwhile
        reason = stale_reason(owner, timeout)
        if reason is None:
            return False
        try:
            judged = os.stat(self.path)
            aside = self.path.with_name(f"{self.path.name}.{secrets.token_hex(4)}.stale")
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        moved = os.stat(aside)
        if (moved.st_ino, moved.st_mtime_ns) != (judged.st_ino, judged.st_mtime_ns):
            with contextlib.suppress(OSError):  # a fresh lock: put it back unless replaced
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                aside.unlink()
            return False
        with contextlib.suppress(OSError):
            aside.unlink()
        if self.say is not None:
            self.say(f"lock {self.path}: taken over from {owner.describe()} ({reason})")
        return True

    @property
    def lost(self) -> bool:
        """True when another run took this lock over (we were thought dead)."""
        try:  # the content, not the inode: a new file may reuse a deleted file's inode
            return self.path.read_text() != self._line
        except OSError:
            return True

    def release(self) -> None:
        if self.held:
            HEARTBEAT.discard(self.path)
            if not self.lost:  # never delete the lock of a run that took ours over
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
