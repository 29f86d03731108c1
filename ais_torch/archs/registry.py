"""Find architectures through the ``ais_torch.archs`` entry-point group.

Our own architectures are declared in ais_torch's ``pyproject.toml`` exactly as a third party
declares theirs::

    [project.entry-points."ais_torch.archs"]
    tiny_net = "tiny_arch.net:TinyNet"

Entry points are discovered from installed metadata; a class is imported by :func:`load` and
checked there; every problem a user can hit (two packages claiming one name, a plugin that does
not import, a ``pytorch_lightning`` class, an unknown name) is an
:class:`~ais_torch.errors.ArchPluginError` that names the package and the fix.
Preset names (:func:`~ais_torch.archs.presets.register_preset`, called next to each class) are
resolved here too, so ``build("vggnet_l")`` works like an entry point with different default
hyperparameters. Presets are known once their modules are imported, so listing imports the
architectures' modules (torch included); a plugin that fails to import is still listed by its
entry-point name and reported when it is built.

``AIS_TORCH_DISABLE_PLUGINS=1`` ignores every distribution but ais_torch itself (for debugging
and reproducible runs, like pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata as md
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ais_torch.archs.presets import Preset, registered
from ais_torch.errors import ArchPluginError, ConfigError

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch

GROUP = "ais_torch.archs"
OWN_DISTRIBUTION = "ais_torch"
DISABLE_ENV = "AIS_TORCH_DISABLE_PLUGINS"


@dataclass(frozen=True)
class ArchEntry:
    """Where an architecture name comes from: its entry point and distribution."""

    name: str
    target: str  # "module:Class"
    package: str
    version: str

    @property
    def origin(self) -> str:
        return f"package {self.package} {self.version}"


def _normalise(dist_name: str) -> str:
    return dist_name.lower().replace("-", "_").replace(".", "_")


def _plugins_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def _entries() -> dict[str, ArchEntry]:
    """All declared architectures by name; raises when two packages claim one name."""
    disabled = _plugins_disabled()
    found: dict[str, ArchEntry] = {}
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist
        package = dist.metadata["Name"] if dist is not None else "<unknown package>"
        version = dist.version if dist is not None else "?"
        if disabled and _normalise(package) != OWN_DISTRIBUTION:
            continue
        entry = ArchEntry(ep.name, ep.value.replace(" ", ""), package, version)
        previous = found.get(ep.name)
        if previous is None or previous == entry:
            found[ep.name] = entry
        elif previous.target != entry.target:
            raise ArchPluginError(
                f"architecture name {ep.name!r} is declared by two packages: {previous.origin} "
                f"({previous.target}) and {entry.origin} ({entry.target}); uninstall one of "
                f"them, or set {DISABLE_ENV}=1 to use only ais_torch's own architectures"
            )
    return found


@functools.cache
def _classes() -> tuple[dict[type, str], dict[str, ArchEntry]]:
    """Entry-point name by class object, and the entries that fail to import.

    Importing the classes' modules runs their :func:`register_preset` calls. Classes are
    matched by identity, so a re-exported class is found and a stale registration (from a
    module since re-imported or removed) is not.
    """
    by_class: dict[type, str] = {}
    failed: dict[str, ArchEntry] = {}
    for name, entry in _entries().items():
        try:
            obj = md.EntryPoint(entry.name, entry.target, GROUP).load()
        except Exception:  # reported, with the fix, when this entry is built (_load_entry)
            failed[name] = entry
            continue
        if isinstance(obj, type):
            by_class.setdefault(obj, name)
    return by_class, failed


@functools.cache
def presets() -> dict[str, tuple[str, Preset]]:
    """Registered presets of available architectures: name -> (entry-point name, preset).

    In registration order. A preset whose class is no available entry point (a plugin that was
    uninstalled or disabled) is left out; an entry point named like another class's preset is
    an error, as the name would mean two things.
    """
    entries = _entries()
    by_class, _failed = _classes()
    found: dict[str, tuple[str, Preset]] = {}
    for preset in registered():
        arch = by_class.get(preset.arch_class)
        if arch is not None:
            found[preset.name] = (arch, preset)
    for name, entry in entries.items():
        if name in found and found[name][0] != name:
            owner = entries[found[name][0]].package
            raise ArchPluginError(
                f"architecture name {name!r} from {entry.origin} clashes with {owner}'s preset "
                f"of that name; the plugin must choose another name (or set {DISABLE_ENV}=1)"
            )
        if name in found and found[name][1].hparams:
            raise ArchPluginError(
                f"preset {name!r} shares its name with its class's entry point, so it must be "
                "that class's defaults (no hyperparameters)"
            )
    return found


def refresh() -> None:
    """Forget what was discovered (after installing a plugin or changing ``sys.path``)."""
    importlib.invalidate_caches()
    _entries.cache_clear()
    _classes.cache_clear()
    presets.cache_clear()


def available() -> list[str]:
    """Sorted names that :func:`build` accepts: entry points plus their presets."""
    return sorted(set(_entries()) | set(presets()))


def _resolve(name: str) -> tuple[ArchEntry, dict[str, object]]:
    """(entry point, preset hyperparameters) for an entry-point or preset name."""
    entries = _entries()
    if name in entries:
        return entries[name], {}
    if name in presets():
        arch, preset = presets()[name]
        return entries[arch], copy.deepcopy(dict(preset.hparams))
    names = available()
    if not names:
        raise ArchPluginError(
            f"unknown architecture {name!r}: no architectures are registered under the "
            f"entry-point group {GROUP!r}. Is ais_torch installed (pip install -e .)?"
        )
    failed = _classes()[1]
    hint = ""
    if failed:
        broken = ", ".join(f"{n!r} ({e.origin})" for n, e in sorted(failed.items()))
        hint = f"; presets of architectures that fail to import are unknown: {broken}"
    raise ArchPluginError(f"unknown architecture {name!r}; available: {', '.join(names)}{hint}")


def describe(name: str) -> dict[str, object]:
    """Where ``name`` comes from: entry point, class path, package, version, preset hparams.

    Meant to be stored next to weights, so a model file says which plugin it needs.
    """
    entry, hparams = _resolve(name)
    return {
        "name": name,
        "arch": entry.name,
        "target": entry.target,
        "package": entry.package,
        "version": entry.version,
        "preset_hparams": hparams,
    }


def load(name: str) -> type[AisArch]:
    """Import and check the class behind ``name`` (an entry point or a preset name)."""
    entry, _ = _resolve(name)
    return _load_entry(entry)


def _load_entry(entry: ArchEntry) -> type[AisArch]:
    try:
        obj = md.EntryPoint(entry.name, entry.target, GROUP).load()
    except Exception as err:
        raise ArchPluginError(
            f"architecture {entry.name!r} from {entry.origin} failed to import: "
            f"{type(err).__name__}: {err}; fix or uninstall {entry.package}"
        ) from err
    check_class(obj, entry)
    return obj


def check_class(obj: object, entry: ArchEntry) -> None:
    """Raise a clear :class:`ArchPluginError` unless ``obj`` is a usable ``AisArch`` subclass."""
    from ais_torch.archs.base import AisArch

    where = f"architecture {entry.name!r} ({entry.target}) from {entry.origin}"
    if not isinstance(obj, type):
        raise ArchPluginError(
            f"{where} is a {type(obj).__name__}, not a class; point the entry "
            "point at a subclass of ais_torch.archs.AisArch"
        )
    if issubclass(obj, AisArch):
        if not isinstance(obj.title, str) or not obj.title:
            raise ArchPluginError(f"{where} sets no `title` (a human-readable name)")
        return
    legacy = sys.modules.get("pytorch_lightning")
    if legacy is not None and issubclass(obj, legacy.LightningModule):
        raise ArchPluginError(
            f"{where} subclasses pytorch_lightning.LightningModule, but ais_torch uses "
            "lightning.pytorch.LightningModule (the two are different classes). Fix: subclass "
            "ais_torch.archs.AisArch (which is a lightning.pytorch.LightningModule) and import "
            "from `lightning.pytorch` instead of `pytorch_lightning`"
        )
    from lightning.pytorch import LightningModule

    if issubclass(obj, LightningModule):
        raise ArchPluginError(
            f"{where} is a LightningModule but not an ais_torch.archs.AisArch; subclass AisArch"
        )
    raise ArchPluginError(f"{where} is not a subclass of ais_torch.archs.AisArch")


def build(name: str, **hparams: object) -> AisArch:
    """Build architecture ``name`` (entry point or preset); ``hparams`` override the preset's.

    This is the Hydra target of ``conf/arch/*.yaml``; OmegaConf containers are turned into
    plain lists/dicts so the recorded hyperparameters stay plain JSON. ``None`` for one of the
    hyperparameters every architecture shares (:data:`~ais_torch.archs.base.COMMON_HPARAMS`,
    where it is never a valid value) means "the preset's own": that is how
    ``conf/arch/base.yaml`` offers them for overriding without repeating any value.
    """
    from ais_torch.archs.base import COMMON_HPARAMS

    entry, preset = _resolve(name)
    cls = _load_entry(entry)
    overrides = {
        k: _plain(v) for k, v in hparams.items() if not (v is None and k in COMMON_HPARAMS)
    }
    try:
        model = cls(**{**preset, **overrides})
    except TypeError as err:
        if "keyword argument" not in str(err):
            raise
        raise ConfigError(f"architecture {name!r} ({entry.target}): {err}") from err
    # provenance, not hyperparameters: the class cannot know which name it was built under
    model.arch_name = entry.name
    model.preset = name if name in presets() else None
    model.initialise_weights()
    return model


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value
