"""The file-name convention that ties results to their tomogram: ``<tomogram>__<feature>.<ext>``.

The original Ais names a segmentation ``<tomogram stem>__<model title>.mrc`` and every later
step (picking, meshes, the viewer) finds results and their tomogram by that name, so composing
and splitting it lives in one place.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ais_torch.formats.mrc import MRC_SUFFIXES

SEPARATOR = "__"
RESULT_SUFFIXES = (".mrc", ".rec", ".map", ".obj")
"""Suffixes :func:`split_name` removes (segmentations and meshes)."""


MAX_TITLE_BYTES = 120
"""A title's share of a file name (255 bytes on every common file system), leaving room for
the tomogram's name, ``__`` and the suffix."""
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\<>:"|?*]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def file_safe(title: str) -> tuple[str, str]:
    """``title`` as it may appear in a file name, and why it was changed ('' if it was not).

    Why sanitise rather than refuse: a model's title is written inside the model file, which
    the user cannot easily edit; its outputs just get a name every file system accepts
    (also Windows, where results are often viewed): path separators, control and reserved
    characters become ``_``, a reserved device name (``CON``, ``NUL``, ``COM1``…) or a title of
    dots gets a ``_``, and a title over :data:`MAX_TITLE_BYTES` is cut, with a short hash of
    the whole title so that two long titles stay apart.
    """
    why = []
    safe = _UNSAFE.sub("_", title)
    if safe != title:
        why.append("path separators or characters not allowed in file names")
    stripped = safe.strip(" .")
    if stripped != safe or not stripped:
        why.append("leading or trailing dots or spaces")
        safe = stripped or "_"
    if _RESERVED.match(safe):
        why.append(f"{safe.split('.')[0]!r} is a reserved device name")
        safe += "_"
    if len(safe.encode()) > MAX_TITLE_BYTES:
        why.append(f"longer than {MAX_TITLE_BYTES} bytes")
        digest = hashlib.sha1(title.encode()).hexdigest()[:8]
        cut = safe.encode()[: MAX_TITLE_BYTES - 9].decode(errors="ignore")
        safe = f"{cut}_{digest}"
    return safe, "; ".join(why)


def result_name(tomogram: str | os.PathLike, title: str, suffix: str = ".mrc") -> str:
    """``<tomogram stem>__<title><suffix>``; the stem drops any MRC suffix (.mrc, .rec, ...);
    the title as :func:`file_safe` makes it."""
    title = file_safe(title)[0]
    name = Path(tomogram).name
    for ext in MRC_SUFFIXES:
        if name.lower().endswith(ext):
            return f"{name[: -len(ext)]}{SEPARATOR}{title}{suffix}"
    return f"{Path(tomogram).stem}{SEPARATOR}{title}{suffix}"


def split_name(path: str | os.PathLike) -> tuple[str, str]:
    """``<tomo>__<feature>.mrc`` → (tomo, feature); a name without ``__`` is its own feature."""
    stem = Path(path).name
    for suffix in RESULT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    tomo, sep, feature = stem.partition(SEPARATOR)
    return (tomo, feature) if sep else (stem, stem)


SEGMENTATION_SUFFIXES = (".mrc", ".rec", ".map")
"""What a written segmentation may end in (ours write ``.mrc``; the original's may be renamed)."""


def find_results(
    data: str | os.PathLike, features: Sequence[str] | None = None, *, what: str = "data"
) -> list[Path]:
    """``<tomo>__<feature>.mrc`` files named by ``data``, keeping only ``features`` if given.

    ``data`` is a folder, a glob, a file, or a comma list / ``[a, b]`` of those — the forms the
    pick, mesh and view commands accept. Why one function: each command must find the same files
    and fail with the same one-line hint (which features *are* there) when none match.
    """
    import glob

    from ais_torch.errors import AisInputError, ConfigError

    wanted = [str(f).strip() for f in features or []]
    for name in wanted:
        if not name or any(c in name for c in "/\\*?["):
            raise ConfigError(f"feature={name!r} must be a plain name such as Antibody")
    items = split_list(str(data))
    if not items:
        raise AisInputError(f"{what}=: empty; set {what}=<folder of segmentations>")
    candidates: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if any(c in item for c in "*?["):
            candidates += sorted(Path(p) for p in glob.glob(str(path)))
        elif path.is_dir():
            candidates += sorted(p for p in path.iterdir() if SEPARATOR in p.name)
        elif path.is_file():
            candidates.append(path)
        else:
            raise AisInputError(
                f"{item}: no such folder or file; set {what}=<folder of segmentations>"
            )
    segmentations = [
        p for p in candidates if p.suffix.lower() in SEGMENTATION_SUFFIXES and p.is_file()
    ]
    found = [p for p in segmentations if not wanted or split_name(p)[1] in wanted]
    if not found:
        there = sorted({split_name(p)[1] for p in segmentations if SEPARATOR in p.name})
        hint = f" (features there: {', '.join(there)})" if there else ""
        named = " or ".join(f"<tomo>{SEPARATOR}{f}.mrc" for f in wanted) or (
            f"<tomo>{SEPARATOR}<feature>.mrc"
        )
        raise AisInputError(
            f"no segmentation named {named} in {data}{hint}; check feature= and {what}="
        )
    return list(dict.fromkeys(found))


def split_list(value: str) -> list[str]:
    """``a,b`` or ``[a, b]`` → ``["a", "b"]`` (Hydra-style lists on the command line)."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [v.strip().strip("'\"") for v in value.split(",") if v.strip()]
