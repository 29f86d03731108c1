"""Shared fixtures: the reference kit location and headless rendering settings."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ais_torch.archs import registry

# Render off screen through EGL: no display, no Xvfb (see docs/aesthetics notes on pyvista).
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The team's shared folder (reference files made by the original Ais); skip if absent."""
    if not (SHARED / "reference").is_dir():
        pytest.skip(f"shared reference kit not found at {SHARED}")
    return SHARED


FakeDist = Callable[..., Path]


@pytest.fixture
def fake_dist(tmp_path: Path) -> Iterator[FakeDist]:
    """Make ``fake_dist(name, version, entry_points, modules)`` look installed.

    Writes ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and the given module files
    into a fresh folder, puts it first on ``sys.path`` and refreshes the registry; undone after
    the test (also the imported fake modules), so other tests see the real environment.
    """
    added: list[str] = []
    modules: list[str] = []

    def make(
        name: str,
        version: str = "0.3",
        entry_points: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
        extra_path: Path | None = None,
    ) -> Path:
        root = tmp_path / f"site_{name}_{len(added)}"
        info = root / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "\n".join(f"{k} = {v}" for k, v in (entry_points or {}).items())
        (info / "entry_points.txt").write_text(f"[ais_torch.archs]\n{lines}\n")
        for rel, text in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            modules.append(rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
        for p in [root, *([extra_path] if extra_path else [])]:
            sys.path.insert(0, str(p))
            added.append(str(p))
        registry.refresh()
        return root

    yield make
    for p in added:
        sys.path.remove(p)
    for mod in modules:
        for key in [k for k in sys.modules if k == mod or k.startswith(mod + ".")]:
            del sys.modules[key]
    registry.refresh()
