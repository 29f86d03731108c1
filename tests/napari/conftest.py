"""GUI tests (marker ``gui``) need napari and Qt; without a display they use Qt's offscreen
platform (enough for the widget on a ``ViewerModel``), and the screenshot test skips."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

HAS_NAPARI = all(importlib.util.find_spec(m) for m in ("napari", "qtpy", "pytestqt"))
HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
if HAS_NAPARI and not HAS_DISPLAY and sys.platform.startswith("linux"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason='needs napari and Qt: pip install -e ".[napari]"')
    for item in items:
        if "gui" in item.keywords and not HAS_NAPARI:
            item.add_marker(skip)
