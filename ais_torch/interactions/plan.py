"""The segmentation engine's post-processing hook: competition, then interactions, in order.

:func:`build_postprocess` turns the Hydra ``interactions`` node (see
``conf/segment/interactions/``), the models' metadata (their ``emit``/``absorb`` flags) and a
``.scnmgroup``'s interaction list into one function
``fn({title: prediction}, voxel_size_A) -> {title: prediction}`` applied to each tomogram's
full predictions, or ``None`` when there is nothing to do (so the engine can stream slabs
straight to disk). Every title and value is checked when the function is built,
so a typo fails before any model runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.interactions.competition import apply_competition, competing_pairs
from ais_torch.interactions.rules import (
    GEOMETRIES,
    Interaction,
    VoxelSize,
    apply_interaction,
)

if TYPE_CHECKING:
    from ais_torch.formats.scnm import ModelMetadata

log = logging.getLogger("ais_torch.interactions")

PostProcessFn = Callable[[dict[str, np.ndarray], float], dict[str, np.ndarray]]

CONFIG_KEYS = ("geometry", "competition", "emit", "absorb", "rules")
RULE_KEYS = ("parent", "partner", "type", "radius_nm", "threshold", "geometry", "min_size_nm3")
DEFAULT_GEOMETRY = "3d"
DEFAULT_THRESHOLD = 0.5
DUST_BYTES_PER_VOXEL = 5


@dataclass(frozen=True)
class PostProcess:
    """A checked plan, callable as the engine's :data:`PostProcessFn`."""

    emit: tuple[str, ...] = ()
    absorb: tuple[str, ...] = ()
    rules: tuple[Interaction, ...] = ()
    progress: bool = True

    def describe(self) -> list[str]:
        """One line per step, in the order they run (for logs and checks)."""
        lines = [
            f"competition: {a} absorbs where {', '.join(r)} is higher"
            for a, r in competing_pairs(self.emit, self.absorb).items()
        ]
        return lines + [f"interaction {i + 1}: {r.describe()}" for i, r in enumerate(self.rules)]

    def working_bytes_per_voxel(self) -> int:
        """Bytes per tomogram voxel the steps hold beyond the predictions: a rule with
        ``min_size_nm3`` labels its partner's pieces over the whole volume (bool + int32);
        the other steps work slice by slice."""
        return DUST_BYTES_PER_VOXEL if any(r.min_size_nm3 > 0 for r in self.rules) else 0

    def titles(self) -> set[str]:
        return {*self.emit, *self.absorb, *(t for r in self.rules for t in (r.parent, r.partner))}

    def __call__(
        self, predictions: dict[str, np.ndarray], voxel_size_A: VoxelSize
    ) -> dict[str, np.ndarray]:
        """Competition, then the rules in order; same keys, shapes and dtypes.

        Writable arrays are modified in place (a tomogram's predictions can be gigabytes; a copy
        of each would double the memory); read-only ones (e.g. memmaps) are copied first.
        """
        missing = sorted(self.titles() - set(predictions))
        if missing:
            raise ConfigError(
                f"post-processing needs model(s) {', '.join(missing)} but got predictions for "
                f"{', '.join(predictions) or 'none'}"
            )
        out = dict(predictions)
        for title in self.titles():
            a = out[title]
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "uif":
                raise AisInputError(
                    f"{title}: prediction should be a uint8 (0-255) or float (0-1) array, got "
                    f"{getattr(a, 'dtype', type(a).__name__)}"
                )
            if not a.flags.writeable:
                out[title] = np.array(a)
        for absorber, rivals in competing_pairs(self.emit, self.absorb).items():
            log.info("competition: %s absorbs where %s is higher", absorber, ", ".join(rivals))
        apply_competition(out, self.emit, self.absorb)
        for rule in self.rules:
            log.info("interaction: %s", rule.describe())
            apply_interaction(
                out[rule.parent], out[rule.partner], rule, voxel_size_A, progress=self.progress
            )
        return out


def _titles_list(value: object, key: str, known: Sequence[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"interactions.{key} should be a list of model titles, got {value!r}")
    for title in value:
        _check_title(title, f"interactions.{key}", known)
    return tuple(value)


def _check_title(title: object, where: str, known: Sequence[str]) -> None:
    if title not in known:
        raise ConfigError(
            f"{where}: model '{title}' is not among the models being run "
            f"(available: {', '.join(known) or 'none'}); check the title's spelling and case"
        )


def _rule(item: object, index: int, geometry: str, known: Sequence[str]) -> Interaction:
    where = f"interactions.rules[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"{where} should be a mapping like {{parent: Antibody, partner: Membrane, "
            f"type: avoid, radius_nm: 10}}, got {item!r}"
        )
    unknown = sorted(set(item) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; use {', '.join(RULE_KEYS)}"
        )
    for key in ("parent", "partner", "type", "radius_nm"):
        if key not in item:
            raise ConfigError(f"{where}: '{key}' is missing")
    rule = Interaction(
        parent=item["parent"],
        partner=item["partner"],
        type=item["type"],
        radius_nm=item["radius_nm"],
        threshold=item.get("threshold", DEFAULT_THRESHOLD),
        geometry=item.get("geometry") or geometry,
        min_size_nm3=item.get("min_size_nm3", 0.0),
        where=where,
    )
    _check_title(rule.parent, where, known)
    _check_title(rule.partner, where, known)
    return rule


def build_postprocess(
    config: Mapping[str, object] | None,
    metadata: Mapping[str, ModelMetadata],
    group_interactions: Sequence[Mapping[str, Any]] = (),
    *,
    progress: bool = True,
) -> PostProcess | None:
    """The post-processing for one set of models, or ``None`` when there is nothing to do.

    ``config`` is the ``interactions`` node as a plain dict (``geometry``, ``competition``,
    ``emit``, ``absorb``, ``rules``; all optional). Emitters/absorbers are the models whose
    metadata says so plus the titles listed (none at all with ``competition: false``). Rules run
    in order: first the group's (the original's 2d geometry), then the config's.
    """
    if type(config).__module__.startswith("omegaconf"):  # a DictConfig passed straight in
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"interactions should be a mapping of settings, got {config!r}")
    config = dict(config or {})
    known = list(metadata)
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"interactions: unknown key(s) {', '.join(map(str, unknown))}; "
            f"use {', '.join(CONFIG_KEYS)}"
        )
    geometry = str(config.get("geometry") or DEFAULT_GEOMETRY).strip().lower()
    if geometry not in GEOMETRIES:
        raise ConfigError(
            f"interactions.geometry {config.get('geometry')!r} unknown; use 2d (the original's "
            "per-slice disk) or 3d (a sphere)"
        )
    competition = config.get("competition", True)
    if not isinstance(competition, bool):
        raise ConfigError(f"interactions.competition should be true or false, got {competition!r}")
    emit_extra = _titles_list(config.get("emit"), "emit", known)
    absorb_extra = _titles_list(config.get("absorb"), "absorb", known)
    emit: tuple[str, ...] = ()
    absorb: tuple[str, ...] = ()
    if competition:
        emit = tuple(t for t in known if metadata[t].emit or t in emit_extra)
        absorb = tuple(t for t in known if metadata[t].absorb or t in absorb_extra)
    rules: list[Interaction] = []
    for i, item in enumerate(group_interactions):
        rule = Interaction.from_group(item, where=f".scnmgroup interaction {i}")
        for title in (rule.parent, rule.partner):
            _check_title(title, f".scnmgroup interaction {i}", known)
        rules.append(rule)
    raw_rules = config.get("rules") or []
    if not isinstance(raw_rules, list | tuple):
        raise ConfigError(f"interactions.rules should be a list of rules, got {raw_rules!r}")
    rules += [_rule(item, i, geometry, known) for i, item in enumerate(raw_rules)]
    plan = PostProcess(emit=emit, absorb=absorb, rules=tuple(rules), progress=progress)
    if not rules and not competing_pairs(emit, absorb):
        return None
    return plan
