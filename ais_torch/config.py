"""Where the Hydra configs live, for source checkouts, editable and regular installs alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def config_dir() -> Path:
    """Absolute path of the ``conf/`` folder.

    A wheel carries the configs as ``ais_torch/conf``; a source checkout or editable install
    imports the package from the repository, where they sit beside it as ``conf/``.
    """
    packaged = Path(str(resources.files("ais_torch"))) / "conf"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / "conf"
    if source.is_dir():
        return source
    raise FileNotFoundError(
        f"ais_torch configs not found at {packaged} or {source}; reinstall ais_torch"
    )
