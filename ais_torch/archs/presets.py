"""Named sizes of architectures, declared next to their class with :func:`register_preset`.

A preset is a name plus the hyperparameters in which it differs from its class's defaults::

    register_preset("unet_m", UNet, {"encoder": [[32, 32], ...]}, titles=("UNet M",))

That call, in the family's module (``archs/unet.py``), is the only place those values live:
``build("unet_m")`` reads them from here, ``conf/arch/unet_m.yaml`` names the preset and nothing
more, and a plugin package registers its presets the same way in its own module. ``PRESETS``,
``ORIGINAL_TITLES`` and the helpers below are views over the registrations of every available
architecture (ours and installed plugins'), built on first use by importing those modules; so
importing this module stays cheap (no torch).

``titles`` are the model titles the original Ais stores in ``.scnm`` metadata (``"arch"``), the
current one first. Where a title changed meaning between versions, each preset that carries it
gives the original's ``n_parameters`` (one input channel), which tells them apart: see
:func:`preset_for_title`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ais_torch.errors import ArchPluginError, ConfigError

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch

DEFAULT_PRESET = "vggnet_m"


@dataclass(frozen=True)
class Preset:
    """One registration: the class it builds and what differs from the class's defaults."""

    name: str
    arch_class: type[AisArch]
    hparams: Mapping[str, object] = field(default_factory=dict)
    titles: tuple[str, ...] = ()
    n_parameters: int | None = None

    @property
    def target(self) -> str:
        """``module:Class`` of the class, the form entry points use."""
        return f"{self.arch_class.__module__}:{self.arch_class.__qualname__}"


_REGISTERED: dict[str, Preset] = {}


def register_preset(
    name: str,
    arch_class: type[AisArch],
    hparams: Mapping[str, object] | None = None,
    *,
    titles: Sequence[str] = (),
    n_parameters: int | None = None,
) -> Preset:
    """Declare preset ``name`` of ``arch_class`` (call it in the class's own module).

    ``hparams`` are only those that differ from the class defaults (plain JSON values); a preset
    named like its class's entry point must have none. ``titles`` and ``n_parameters`` link the
    preset to the original's model titles (see the module docstring). Registering a name again
    from the same class replaces it (a re-imported module); from another class it is an error.
    """
    preset = Preset(name, arch_class, dict(hparams or {}), tuple(titles), n_parameters)
    previous = _REGISTERED.get(name)
    if previous is not None and previous.target != preset.target:
        raise ArchPluginError(
            f"preset {name!r} is registered twice: by {previous.target} and by {preset.target}; "
            "one of them must choose another name"
        )
    _REGISTERED[name] = preset
    return preset


def registered() -> list[Preset]:
    """Every registration so far, in registration order (available or not)."""
    return list(_REGISTERED.values())


def _catalogue() -> Mapping[str, tuple[str, Preset]]:
    """preset name -> (entry-point name, registration) for available architectures."""
    from ais_torch.archs import registry

    return registry.presets()


class _PresetView(Mapping[str, tuple[str, dict[str, object]]]):
    """``PRESETS[name] == (entry-point name, hparams)``, read from the registrations."""

    def __getitem__(self, name: str) -> tuple[str, dict[str, object]]:
        arch, preset = _catalogue()[name]
        return arch, copy.deepcopy(dict(preset.hparams))

    def __iter__(self) -> Iterator[str]:
        return iter(_catalogue())

    def __len__(self) -> int:
        return len(_catalogue())

    def __repr__(self) -> str:
        return f"PRESETS({dict(self)!r})"


class _TitleView(Mapping[str, str]):
    """``ORIGINAL_TITLES[title] == preset``: the first preset registered with that title."""

    def _table(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for name, (_arch, preset) in _catalogue().items():
            for title in preset.titles:
                table.setdefault(title, name)
        return table

    def __getitem__(self, title: str) -> str:
        return self._table()[title]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"ORIGINAL_TITLES({self._table()!r})"


PRESETS: Mapping[str, tuple[str, dict[str, object]]] = _PresetView()
ORIGINAL_TITLES: Mapping[str, str] = _TitleView()


def preset_for_title(title: str, n_parameters: int | None = None) -> str:
    """The preset for an original model title, disambiguated by its parameter count if given."""
    if title not in ORIGINAL_TITLES:
        known = ", ".join(sorted(ORIGINAL_TITLES))
        raise ConfigError(
            f"no ais_torch architecture for the original title {title!r}; known: {known}"
        )
    if n_parameters is not None:
        for name, (_arch, preset) in _catalogue().items():
            if title in preset.titles and preset.n_parameters == n_parameters:
                return name
    return ORIGINAL_TITLES[title]


def title_for_preset(preset: str | None) -> str | None:
    """The original's title for a preset (e.g. ``"vggnet_m"`` → ``"VGGNet M"``), if it has one.

    This is what goes into the ``arch`` field of a model file, so the original Ais shows the
    same name: the first title the preset registered.
    """
    found = _catalogue().get(preset) if preset is not None else None
    return found[1].titles[0] if found is not None and found[1].titles else None
