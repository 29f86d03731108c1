"""Shared behaviour of the command-line shells: one-line errors unless debugging."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from ais_torch.errors import AisError

T = TypeVar("T")


def run_cli(fn: Callable[[], T]) -> T:
    """Run ``fn``; an :class:`AisError` becomes ``error: <one line>`` and exit code 2.

    Set ``AIS_TORCH_DEBUG=1`` to see the full traceback instead.
    """
    try:
        return fn()
    except AisError as err:
        if os.environ.get("AIS_TORCH_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
