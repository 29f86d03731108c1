"""Sharing the work: ranks split the tomogram list, lock files keep independent runs apart.

* Under ``torchrun`` (``RANK``/``WORLD_SIZE``), SLURM (``SLURM_PROCID``/``SLURM_NTASKS``) or an
  initialised ``torch.distributed`` group, rank ``r`` of ``n`` takes tomograms ``r, r+n, ...``
  of the sorted list: no tomogram twice, no coordination needed.
* Two runs that know nothing of each other (two shells, two SLURM jobs) may point at the same
  output folder. Before computing an output, a run creates ``.<output name>.lock`` with
  ``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ filesystems) holding its pid and host; the
  other run sees the lock and moves on. A lock whose process is gone (same host, dead pid) is
  stale — left by a killed run — and is taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ais_torch.formats.atomic import _process_alive

T = TypeVar("T")

LOCK_PREFIX = "."
LOCK_SUFFIX = ".lock"


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


def _read_owner(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text().split()
    except OSError:
        return None, ""
    pid = int(text[0]) if text and text[0].isdigit() else None
    host = text[1] if len(text) > 1 else ""
    return pid, host


class OutputLock:
    """``.<name>.lock`` beside an output; ``acquire()`` is False when another live run holds it."""

    def __init__(self, output: Path) -> None:
        self.path = lock_path(output)
        self.held = False

    def acquire(self) -> bool:
        for _ in range(2):  # second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._remove_if_stale():
                    return False
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n")
            self.held = True
            return True
        return False

    def _remove_if_stale(self) -> bool:
        pid, host = _read_owner(self.path)
        if pid is None:
            # being written this very moment, or garbage: only garbage older than a minute
            with contextlib.suppress(OSError):
                if time.time() - self.path.stat().st_mtime > 60:
                    self.path.unlink()
                    return True
            return False
        if host == socket.gethostname() and not _process_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return True
        return False

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
