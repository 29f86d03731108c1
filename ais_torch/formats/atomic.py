"""Atomic output files: write to a hidden temp file beside the target, then rename.

A crash, a full disk or Ctrl-C therefore never leaves a half-written output under the final
name, and a rerun that skips existing outputs resumes exactly where the last run stopped. A
full disk or a folder that cannot be written ends in one line naming the file
(:class:`~ais_torch.errors.AisOutputError`), never an ``OSError`` traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.errors import AisInputError, AisOutputError

if TYPE_CHECKING:
    from collections.abc import Iterator

PARTIAL_SUFFIX = ".partial"

OUTPUT_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("output_key", default="out")
"""The option a full-disk or read-only message tells the user to change (``out`` unless a
command writes through another one, e.g. ``evaluate json=``): see :func:`output_key`."""


@contextlib.contextmanager
def output_key(key: str) -> Iterator[None]:
    """Within this block, output errors name ``key=`` as the option to change."""
    token = OUTPUT_KEY.set(key)
    try:
        yield
    finally:
        OUTPUT_KEY.reset(token)


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
    if final.is_dir():
        raise AisInputError(f"{final}: is a folder; give a file name for this output")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(final, err) from None
    tmp = temp_path_for(final)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.errno in OUTPUT_ERRNOS:
            raise output_error(final, err) from None
        raise


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
NOT_CREATABLE = frozenset({errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG})
OUTPUT_ERRNOS = NO_SPACE | NOT_WRITABLE | NOT_CREATABLE
"""The errors of writing an output that a user fixes by freeing space or choosing a folder."""


def output_error(final: str | os.PathLike, err: OSError) -> AisOutputError | OSError:
    """One line for an OSError met while writing ``final`` (the error itself if not ours)."""
    final = Path(final)
    key = OUTPUT_KEY.get()
    if err.errno in NO_SPACE:
        what = "disk quota exceeded" if err.errno == errno.EDQUOT else "no space left on device"
        if err.errno == errno.EFBIG:
            what = "file too large for this file system"
        return AisOutputError(f"{what} while writing {final}; free space or choose another out=")
    if err.errno in NOT_WRITABLE:
        if err.errno == errno.EROFS:
            return AisOutputError(
                f"cannot write {final} (read-only file system); choose another {key}="
            )
        return AisOutputError(
            f"cannot write {final} (permission denied); choose another {key}= or make "
            f"{_existing_ancestor(final.parent)} writable"
        )
    if err.errno in NOT_CREATABLE:
        if err.errno == errno.ENAMETOOLONG:
            return AisOutputError(f"cannot write {final}: file name too long; use a shorter name")
        return AisOutputError(
            f"cannot create the folder {final.parent}: {_blocking_file(final.parent)} is a file; "
            f"choose another {key}= or move that file"
        )
    return err


def check_output_folder(folder: str | os.PathLike, key: str = "out") -> Path:
    """Refuse, in one line and before any work, an output folder that cannot be written.

    Why up front: a batch would otherwise compute for an hour and then fail on every file. Does
    not create ``folder`` (a run that writes nothing leaves no empty folder behind).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AisInputError(f"{key}={folder}: is a file; give a folder (a new or existing one)")
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise AisOutputError(
            f"{key}={folder}: cannot be created, {base} is a file; choose another {key}="
        )
    if not os.access(base, os.W_OK | os.X_OK):
        ro = _read_only(base)
        why = "is on a read-only file system" if ro else "is not writable (permission denied)"
        raise AisOutputError(
            f"{key}={folder}: {base} {why}; choose another {key}="
            + ("" if ro else f" or make {base} writable")
        )
    return folder


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (as a file or a folder)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _blocking_file(path: Path) -> Path:
    """The first ancestor of ``path`` that is a file, where a folder should be."""
    path = Path(os.path.abspath(path))
    for p in (*reversed(path.parents), path):
        if p.exists() and not p.is_dir():
            return p
    return path


def _read_only(path: Path) -> bool:
    with contextlib.suppress(OSError, AttributeError):
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    return False


def preallocate(path: str | os.PathLike) -> None:
    """Reserve the blocks of ``path``'s current size, so a full disk is an ``OSError`` now.

    Why: a memory-mapped output is created sparse; writing its pages on a full file system
    kills the process with SIGBUS (no exception, no clean-up). ``posix_fallocate`` turns that
    into ENOSPC before the first page is touched. File systems without it are left as they are.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size > 0:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as err:
                if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
    finally:
        os.close(fd)


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
