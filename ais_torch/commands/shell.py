"""Shared behaviour of the command-line shells: one-line errors unless debugging."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from ais_torch.errors import AisError, ConfigError

T = TypeVar("T")
N = TypeVar("N")


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


def wants_help(args: Sequence[str]) -> bool:
    """``-h``, ``--help`` or ``help`` anywhere on the command line."""
    return any(a in ("-h", "--help", "help") for a in args)


def command_main(argv: Sequence[str] | None, usage: str, run: Callable[[list[str]], int]) -> int:
    """The shell of a small command: usage on ``--help`` (or no arguments), one-line errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or wants_help(args):
        print(usage, end="")
        return 0 if args else 2
    return run_cli(lambda: run(args))


def parse_key_values(argv: Sequence[str], keys: Sequence[str], *, example: str) -> dict[str, str]:
    """``key=value`` arguments → a dict; malformed, unknown or repeated keys are a ConfigError.

    Leading dashes are dropped and ``-`` in keys reads as ``_`` (``--out-dir=x`` = ``out_dir=x``).
    """
    given: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep:
            raise ConfigError(f"argument {arg!r} is not key=value (e.g. {example})")
        if key not in keys:
            raise ConfigError(f"unknown argument {key!r}; expected one of {', '.join(keys)}")
        if key in given:
            raise ConfigError(f"{key} given twice")
        given[key] = value.strip()
    return given


def number_arg(
    given: dict[str, str],
    key: str,
    default: N,
    kind: Callable[[str], N] = float,  # type: ignore[assignment]
) -> N:
    """``given[key]`` as a number of ``kind`` (float or int), ``default`` when not given."""
    if key not in given:
        return default
    try:
        return kind(given[key])
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise ConfigError(f"{key}={given[key]!r} is not a {what}") from None
