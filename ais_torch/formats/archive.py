"""Tar archives (.scnm, .scnmgroup, .scnt) opened with every size checked before it is read.

Why: these files are downloaded. A tar member's header says how big it is, and tarfile trusts
it: a sparse member, a compressed archive or a forged size turns a 10 KB file into gigabytes
of reads. :func:`open_tar` walks the headers first and refuses, before any member is read:
compressed archives (Ais writes plain tars), sparse members, links and devices, a member that
claims more bytes than the file holds, too many members, and members or totals above the
limits of :mod:`ais_torch.formats.limits`. Reads through it are clamped to the bytes left on
disk, so even tarfile's own header parsing cannot be made to allocate more than the file size.
JSON members go through :func:`parse_json` (size and nesting bounded).
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ais_torch.formats.limits import ENV, human

if TYPE_CHECKING:
    from ais_torch.errors import AisError

COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
)
"""Magic bytes of compressed files: (magic, name, the tool that undoes it)."""


@dataclass(frozen=True)
class TarRules:
    """What one kind of archive may hold; ``*_field`` name the limit to raise in messages."""

    what: str
    """'model', 'model group', 'training set': used in messages."""
    error: type[AisError]
    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    members_field: str = "model_members"
    member_field: str = "member_bytes"
    total_field: str = "archive_bytes"


class _DiskBounded:
    """A read-only file view whose reads never ask for more than the bytes left on disk."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self._size, self._start = fh, size, fh.tell()

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self.tell())
        return self._fh.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            return self._fh.seek(self._start + offset) - self._start
        if whence == os.SEEK_END:
            return self._fh.seek(self._start + self._size + offset) - self._start
        return self._fh.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._fh.tell() - self._start

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def compression_of(head: bytes) -> tuple[str, str] | None:
    """(format, tool to decompress) if ``head`` starts like a compressed file."""
    for magic, name, tool in COMPRESSED:
        if head.startswith(magic):
            return name, tool
    return None


@contextlib.contextmanager
def open_tar(
    source: Path | tuple[IO[bytes], int], label: str, rules: TarRules
) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo]]]:
    """Yield ``(tar, members)`` once every member header passed the checks above.

    ``source`` is a path or ``(seekable file object, its size in bytes)`` (an inner model of a
    group, read in place: no temporary copy). Errors are ``rules.error``, one line naming
    ``label``.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(source, Path):
            try:
                fh: IO[bytes] = stack.enter_context(open(source, "rb"))
                size = os.fstat(fh.fileno()).st_size
            except OSError as err:
                raise rules.error(f"{label}: cannot be read ({err.strerror})") from None
        else:
            fh, size = source
        head = fh.read(8)
        fh.seek(-len(head), os.SEEK_CUR)
        packed = compression_of(head)
        if packed:
            raise rules.error(
                f"{label}: is a {packed[0]}-compressed file, but an Ais {rules.what} is a plain "
                f"tar; decompress it first ({packed[1]} < FILE > plain-file) and open the result"
            )
        view = _DiskBounded(fh, size)
        try:
            tar = stack.enter_context(tarfile.open(fileobj=view, mode="r:"))  # type: ignore[call-overload]
            members = _scan(tar, size, label, rules)
        except (tarfile.TarError, EOFError, OSError, UnicodeError) as err:
            raise rules.error(
                f"{label}: not a readable {rules.what} archive ({err}); copy or download it again"
            ) from None
        yield tar, members


def _scan(tar: tarfile.TarFile, size: int, label: str, rules: TarRules) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    while (member := tar.next()) is not None:
        members.append(member)
        name = member.name
        if len(members) > rules.max_members:
            raise rules.error(
                f"{label}: more than {rules.max_members} archive members; not an Ais "
                f"{rules.what} ({_hint(rules.members_field)})"
            )
        if member.issparse():
            raise rules.error(
                f"{label}: archive member '{name}' is a sparse file; Ais never writes those — "
                f"refusing this {rules.what}"
            )
        if not (member.isreg() or member.isdir()):
            raise rules.error(
                f"{label}: archive member '{name}' is a link or device; refusing to open this "
                f"{rules.what} — it may be malicious"
            )
        if member.isdir():
            continue
        if member.size > rules.max_member_bytes:
            raise rules.error(
                f"{label}: archive member '{name}' claims {human(member.size)}, above the "
                f"{human(rules.max_member_bytes)} limit ({_hint(rules.member_field)})"
            )
        if member.offset_data + member.size > size:
            raise rules.error(
                f"{label}: archive member '{name}' claims {member.size} bytes but the file "
                f"holds only {max(0, size - member.offset_data)} of them; the file is truncated "
                "or forged — copy or download it again"
            )
        total += member.size
        if total > rules.max_total_bytes:
            raise rules.error(
                f"{label}: members add up to more than {human(rules.max_total_bytes)}, the "
                f"limit for one {rules.what} ({_hint(rules.total_field)})"
            )
    return members


def _hint(field: str) -> str:
    return f"if you trust this file, raise {ENV[field]}"


def read_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, label: str, error: type[AisError]
) -> bytes:
    """A checked member's bytes (its size was bounded by :func:`open_tar`)."""
    handle = tar.extractfile(member)
    if handle is None:
        raise error(f"{label}: archive member '{member.name}' cannot be read")
    with handle:
        data = handle.read(member.size)
    if len(data) != member.size:
        raise error(f"{label}: archive member '{member.name}' is truncated; copy the file again")
    return data


def parse_json(
    data: bytes, label: str, error: type[AisError], *, max_bytes: int, max_depth: int
) -> object:
    """JSON from bytes with the size and the nesting bounded (deep nesting would otherwise
    end in a RecursionError traceback, or in one later in code that walks the value)."""
    if len(data) > max_bytes:
        raise error(
            f"{label}: {human(len(data))} of JSON, above the {human(max_bytes)} limit "
            f"({_hint('json_bytes')})"
        )
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        value, deepest = None, max_depth + 1
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise error(f"{label}: not valid JSON ({first})") from None
    else:
        deepest = json_depth(value)
    if deepest > max_depth:
        raise error(
            f"{label}: JSON nested {deepest}{'+' if value is None else ''} levels deep (limit "
            f"{max_depth}); the file is damaged or forged ({_hint('json_depth')})"
        )
    return value


def json_depth(value: object) -> int:
    """How deeply lists/objects nest in a parsed JSON value (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (node.values() if isinstance(node, dict) else node))
    return deepest
