"""Shared fixtures: the reference kit location and headless rendering settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
