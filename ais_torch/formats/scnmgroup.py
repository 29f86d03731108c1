"""``.scnmgroup``: several models plus their interactions in one uncompressed tar.

Layout, as the original Ais writes it: ``<group>_model_<i>.scnm`` for each model and
``<group>_interactions.json``, a list of ``{parent_title, partner_title, type (0 colocalize,
1 avoid), radius (nm), threshold}``. Interactions point at models by title, so titles must be
unique within a group. Groups are downloaded like models, so every member header is checked
before a byte is read, and inner models are opened only from a private temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ais_torch.errors import AisInputError, ModelFormatError
from ais_torch.formats.archive import TarRules, open_tar, parse_json, read_member
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.limits import limits
from ais_torch.formats.scnm import (
    InnerSource,
    ModelMetadata,
    is_plain_name,
    load_scnm,
    read_metadata,
)

INTERACTION_TYPES = {0: "colocalize", 1: "avoid"}
_MODEL_INDEX = re.compile(r"_model_(\d+)\.scnm$")


def _check_interaction(item: Any, where: str) -> dict[str, Any]:
    """One interaction with the original's keys and types; anything else is a clear error."""
    if not isinstance(item, dict):
        raise ModelFormatError(f"{where}: interaction {item!r} is not a JSON object")
    out = dict(item)
    for key in ("parent_title", "partner_title"):
        if not isinstance(out.get(key), str) or not out[key]:
            raise ModelFormatError(f"{where}: interaction has no '{key}' ({item!r})")
    kind = out.get("type")
    if isinstance(kind, bool) or kind not in INTERACTION_TYPES:
        raise ModelFormatError(
            f"{where}: interaction type {kind!r} unknown; use 0 (colocalize) or 1 (avoid)"
        )
    for key in ("radius", "threshold"):
        value = out.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelFormatError(f"{where}: interaction '{key}' should be a number ({item!r})")
        out[key] = float(value)
    out["type"] = int(kind)
    dust = out.get("min_size_nm3", 0)  # ours, optional: partner pieces below it are ignored
    if isinstance(dust, bool) or not isinstance(dust, int | float) or not 0 <= dust < float("inf"):
        raise ModelFormatError(
            f"{where}: interaction 'min_size_nm3' should be a number >= 0 (nm³) ({item!r})"
        )
    return out


def _link(
    interactions: list[dict[str, Any]], titles: list[str], where: str
) -> list[dict[str, Any]]:
    """Add ``parent_index``/``partner_index``; a missing or ambiguous title is an error."""
    linked = []
    for item in interactions:
        item = dict(item)
        for key in ("parent", "partner"):
            title = item[f"{key}_title"]
            hits = [i for i, t in enumerate(titles) if t == title]
            if not hits:
                raise ModelFormatError(
                    f"{where}: interaction refers to model '{title}', which is not in the group "
                    f"(models: {', '.join(titles) or 'none'})"
                )
            if len(hits) > 1:
                raise ModelFormatError(
                    f"{where}: {len(hits)} models are titled '{title}'; interactions link by "
                    "title, so give the models distinct titles"
                )
            item[f"{key}_index"] = hits[0]
        linked.append(item)
    return linked


def write_scnmgroup(
    path: str | os.PathLike,
    model_paths: list[str | os.PathLike],
    interactions: list[dict[str, Any]],
) -> Path:
    """Bundle ``.scnm`` files and their interactions into ``path`` (atomically).

    The interactions are checked against the models' titles first, so a group that would not
    re-link on opening is never written.
    """
    path = Path(path)
    if not model_paths:
        raise AisInputError(f"{path}: a model group needs at least one model")
    group = path.name.removesuffix(".scnmgroup") or "group"
    titles = [read_metadata(p).title for p in model_paths]
    checked = [_check_interaction(i, str(path)) for i in interactions]
    _link(checked, titles, str(path))
    keys = ("parent_title", "partner_title", "type", "radius", "threshold")
    plain = []
    for item in checked:
        entry = {k: item[k] for k in keys}  # the original's keys exactly
        if item.get("min_size_nm3"):  # ours, only where set (the original ignores it)
            entry["min_size_nm3"] = item["min_size_nm3"]
        plain.append(entry)
    with atomic_output(path) as tmp, tarfile.open(tmp, mode="w") as tar:
        for i, model_path in enumerate(model_paths):
            info = tar.gettarinfo(str(model_path), arcname=f"{group}_model_{i}.scnm")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(model_path, "rb") as fh:
                tar.addfile(info, fh)
        payload = json.dumps(plain, indent=1).encode("utf-8")
        info = tarfile.TarInfo(f"{group}_interactions.json")
        info.size, info.mtime = len(payload), int(time.time())
        tar.addfile(info, io.BytesIO(payload))
    return path


def group_rules() -> TarRules:
    """The archive limits of a .scnmgroup (see :mod:`ais_torch.formats.limits`)."""
    lim = limits()
    return TarRules(
        "model group", ModelFormatError, lim.model_members, lim.member_bytes, lim.archive_bytes
    )


def check_group_members(path: Path, members: list[tarfile.TarInfo]) -> None:
    """Refuse the group unless every member is a plain ``*.scnm`` or interactions file.

    Sizes, counts, links and sparse members were checked by :func:`open_tar` already.
    """
    seen: set[str] = set()
    for m in members:
        name = m.name
        if not is_plain_name(name):
            raise ModelFormatError(
                f"{path}: archive member '{name}' has a path (absolute, '..' or folders); "
                "refusing to open this model group — it may be malicious"
            )
        if not m.isreg():
            raise ModelFormatError(
                f"{path}: archive member '{name}' is a link, device or folder; refusing it"
            )
        if not (name.endswith(".scnm") or name.endswith("_interactions.json")):
            raise ModelFormatError(
                f"{path}: unexpected archive member '{name}' (only *.scnm and "
                "*_interactions.json belong in a .scnmgroup); refusing this model group"
            )
        if name in seen:
            raise ModelFormatError(f"{path}: archive member '{name}' appears twice")
        seen.add(name)
    if sum(n.endswith("_interactions.json") for n in seen) > 1:
        raise ModelFormatError(f"{path}: more than one '*_interactions.json' inside")


def _model_order(name: str) -> tuple[int, str]:
    hit = _MODEL_INDEX.search(name)
    return (int(hit.group(1)) if hit else 1 << 30, name)


def list_group(path: str | os.PathLike) -> list[tarfile.TarInfo]:
    """The checked member headers of a group (reads no member data)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: model group file not found; check the path")
    with open_tar(path, str(path), group_rules()) as (_, members):
        check_group_members(path, members)
        return members


@contextlib.contextmanager
def inner_models(
    path: str | os.PathLike,
) -> Iterator[tuple[list[tarfile.TarInfo], Iterator[tuple[tarfile.TarInfo, InnerSource, str]]]]:
    """``(members, models)``: the checked headers, and each ``*.scnm`` member in index order as
    ``(member, (file object, size), label)`` to read in place — never a copy on disk, so a
    killed process leaves nothing behind."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: model group file not found; check the path")
    with open_tar(path, str(path), group_rules()) as (tar, members):
        check_group_members(path, members)  # all headers checked before any data is read
        scnms = sorted(
            (m for m in members if m.name.endswith(".scnm")), key=lambda m: _model_order(m.name)
        )
        if not scnms:
            raise ModelFormatError(f"{path}: no '*.scnm' model inside; not a model group")

        def each() -> Iterator[tuple[tarfile.TarInfo, InnerSource, str]]:
            for m in scnms:
                src = tar.extractfile(m)
                if src is None:
                    raise ModelFormatError(f"{path}: archive member '{m.name}' is unreadable")
                with src:
                    yield m, (src, m.size), f"{path} [{m.name}]"

        yield members, each()


def read_scnmgroup(
    path: str | os.PathLike, *, load_weights: bool = True
) -> tuple[list[tuple[Any, ModelMetadata]], list[dict[str, Any]]]:
    """Open a group: ``([(model, metadata), ...], interactions)`` with models in index order.

    Each interaction dict gains ``parent_index`` and ``partner_index`` (positions in the model
    list). With ``load_weights=False`` the models are ``None`` (metadata only, for listings).
    Inner models are read in place from the group (no temporary copy on disk), each through the
    same checks as a lone ``.scnm``.
    """
    path = Path(path)
    models: list[tuple[Any, ModelMetadata]] = []
    raw_interactions: object = []
    with inner_models(path) as (members, inner):
        for m in members:
            if m.name.endswith("_interactions.json"):
                raw_interactions = _interactions_json(path, m)
        for m, source, label in inner:
            if load_weights:
                models.append(load_scnm(m.name, inner=source, label=label))
            else:
                models.append((None, read_metadata(m.name, inner=source, label=label)))
    if not isinstance(raw_interactions, list):
        raise ModelFormatError(f"{path}: interactions JSON should be a list")
    checked = [_check_interaction(i, str(path)) for i in raw_interactions]
    titles = [meta.title for _, meta in models]
    return models, _link(checked, titles, str(path))


def _interactions_json(path: Path, member: tarfile.TarInfo) -> object:
    lim = limits()
    with open_tar(path, str(path), group_rules()) as (tar, _):
        data = read_member(tar, member, str(path), ModelFormatError)
    return parse_json(
        data,
        f"{path} [{member.name}]",
        ModelFormatError,
        max_bytes=lim.json_bytes,
        max_depth=lim.json_depth,
    )
