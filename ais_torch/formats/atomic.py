"""Atomic output files: write to a hidden temp file beside the target, then rename.

A crash, a full disk or Ctrl-C therefore never leaves a half-written output under the final
name, and a rerun that skips existing outputs resumes exactly where the last run stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.errors import AisInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

PARTIAL_SUFFIX = ".partial"


def temp_path_for(final: Path) -> Path:
    """A unique hidden name in the same folder (same filesystem, so the rename is atomic)."""
    final = Path(final)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return final.with_name(f".{final.name}.{token}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path to write to; on success it replaces ``final``, on any error it is removed.

    Catches ``BaseException`` so that Ctrl-C (KeyboardInterrupt) also cleans up.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise AisInputError(f"{final}: already exists; delete it or pass overwrite=True")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _fsync(path: Path) -> None:
    """Flush file contents to disk before the rename makes them visible."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: nothing was written to the temporary output file")
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def ensure_inside(folder: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Return ``path`` resolved, refusing anything that escapes ``folder`` (e.g. via ``..``)."""
    root = Path(folder).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise AisInputError(
            f"{path}: would be written outside the output folder {root}; use a plain file name"
        )
    return target


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (the segment batch's stale-lock check)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
