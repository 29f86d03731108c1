"""Shared behaviour of the command-line shells: one help format, one-line errors, Ctrl-C.

Every verb describes its keys once, as a table of :class:`Key` rows; ``--help`` is rendered
from that table (and, for the Hydra verbs, the defaults of the composed config), so the help a
user reads and the keys the parser accepts cannot drift apart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ais_torch.errors import AisError, ConfigError

T = TypeVar("T")
N = TypeVar("N")

INTERRUPTED = "interrupted (Ctrl-C); files being written were not kept"
"""The one line a command prints on Ctrl-C (outputs are written atomically, see formats/atomic)."""

EXIT_INTERRUPTED = 130
"""128 + SIGINT, what a shell reports for a program stopped by Ctrl-C."""

HELP_WIDTH = 100


@dataclass(frozen=True)
class Key:
    """One ``key=value`` a verb accepts: a row of its ``--help``.

    ``unit`` is the physical unit (Å, nm, voxels, grey level 0-255, …) or, for keys without one,
    the kind of value (file, folder, list, bool); ``default`` is shown as given (Hydra verbs fill
    it from their composed config instead).
    """

    name: str
    meaning: str
    unit: str = ""
    example: str = ""
    default: str = ""


def key_names(keys: Sequence[Key]) -> tuple[str, ...]:
    """The names a key=value parser accepts (dotted Hydra keys keep their dots)."""
    return tuple(k.name for k in keys)


def render_help(
    usage: str,
    about: str,
    keys: Sequence[Key],
    *,
    defaults: Mapping[str, str] | None = None,
    notes: str = "",
    heading: str = "keys (key=value):",
) -> str:
    """``usage`` line(s), a short paragraph, then one block per key: meaning, unit, default, e.g."""
    defaults = defaults or {}
    width = max([len(k.name) for k in keys] + [8]) + 2
    indent = " " * (2 + width)
    lines = [usage.rstrip(), ""]
    if about:
        lines += [about.strip(), ""]
    lines.append(heading)
    for k in keys:
        default = defaults.get(k.name, k.default)
        facts = [f"unit: {k.unit}" if k.unit else "", f"default: {default}" if default else ""]
        facts.append(f"e.g. {k.example}" if k.example else "")
        text = k.meaning + ("." if k.meaning[-1:].isalnum() else "")
        first = textwrap.wrap(text, HELP_WIDTH - len(indent)) or [""]
        lines.append(f"  {k.name:<{width}}{first[0]}")
        lines += [indent + rest for rest in first[1:]]
        detail = "; ".join(f for f in facts if f)
        if detail:
            lines += [indent + d for d in textwrap.wrap(detail, HELP_WIDTH - len(indent))]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


CLEANUP_SIGNALS = ("SIGTERM", "SIGHUP")
"""Signals that stop a command like Ctrl-C does: what SLURM, ``timeout`` and ``kill`` send
(SIGTERM) and what a closed terminal or ssh session sends (SIGHUP)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so every ``finally`` and context manager
    cleans up as for Ctrl-C (a KeyboardInterrupt subclass: code that lets Ctrl-C through lets
    this through too)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def interrupted(err: BaseException | None = None) -> SystemExit:
    """Ctrl-C, SIGTERM or SIGHUP: one line on stderr, exit code 128 + the signal's number
    (130, 143, 129, as a shell reports a program stopped by it); raise what this returns."""
    if isinstance(err, Terminated):
        print(f"stopped by {err.name}; files being written were not kept", file=sys.stderr)
        return SystemExit(128 + err.signum)
    print(INTERRUPTED, file=sys.stderr)
    return SystemExit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    The first signal raises; later ones are ignored, so a second SIGTERM (``scancel`` twice,
    ``kill`` in a loop) cannot interrupt the clean-up the first one started. Outside the main
    thread (signals cannot be set there) or when a caller already chose its own handler (other
    than the default), nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous: dict[signal.Signals, object] = {}
    for name in CLEANUP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) not in (signal.SIG_DFL, None):
            continue  # not on this platform, or ignored (nohup) / handled by the caller
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def run_cli(fn: Callable[[], T]) -> T:
    """Run ``fn``; an :class:`AisError` becomes ``error: <one line>`` and exit code 2, Ctrl-C,
    SIGTERM and SIGHUP one line and exit code 130, 143, 129 (after the same clean-up).

    Set ``AIS_TORCH_DEBUG=1`` to see the full traceback instead.
    """
    try:
        with signals_raise():
            return fn()
    except AisError as err:
        if os.environ.get("AIS_TORCH_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:
        if os.environ.get("AIS_TORCH_DEBUG"):
            raise
        raise interrupted(err) from None


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


# -- Hydra verbs ---------------------------------------------------------------------------------


def hydra_defaults(
    config_path: str, config_name: str, keys: Sequence[Key], overrides: Sequence[str] = ()
) -> dict[str, str]:
    """Each key's default in the composed config (with ``overrides``, e.g. ``+experiment=…``).

    Interpolations are shown as written (``${data.feature}``); a composition error falls back
    to the config without the overrides, since ``--help`` must always answer.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    def compose_raw(extra: Sequence[str]) -> object:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_path, version_base="1.3"):
            cfg = compose(config_name, overrides=list(extra), return_hydra_config=True)
        return OmegaConf.to_container(cfg, resolve=False)

    try:
        raw = compose_raw(overrides)
    except Exception:  # a bad override: help still shows the plain defaults
        raw = compose_raw(())
    finally:
        GlobalHydra.instance().clear()
    choices = raw["hydra"]["runtime"]["choices"]  # type: ignore[index]
    shown: dict[str, str] = {}
    for k in keys:
        group = k.name.lstrip("+")
        if group in choices:  # a config group: the option chosen
            shown[k.name] = _yaml_value(choices[group])
            continue
        node: object = raw
        for part in k.name.split("."):
            node = node.get(part, None) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            shown[k.name] = "required" if node == "???" else _yaml_value(node)
    return shown


def _yaml_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_yaml_value(v) for v in value) + "]"
    return str(value)


def hydra_main(
    argv: Sequence[str] | None,
    app: Callable[[], None],
    help_text: Callable[[list[str]], str],
    run_dir: str = "",
) -> None:
    """Run a Hydra verb: our ``--help``; else ``app`` (a ``hydra.main``-decorated function)
    with ``argv`` as its overrides, Ctrl-C during composition or the run as one line.

    ``run_dir`` names the key Hydra makes its run folder from (``out`` for ``pick``);
    ``hydra.run.dir=`` always is. Hydra creates that folder before the command runs, so a
    folder that cannot be created is checked here, to fail in one line, not a Hydra traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_text([a for a in args if a not in ("-h", "--help")]), end="")
        return
    sys.argv = [sys.argv[0], *args]
    try:
        with signals_raise():
            run_cli(lambda: _check_run_dirs(args, ("hydra.run.dir", run_dir)))
            app()
    except KeyboardInterrupt as err:
        if os.environ.get("AIS_TORCH_DEBUG"):
            raise
        raise interrupted(err) from None


def _check_run_dirs(args: Sequence[str], keys: Sequence[str]) -> None:
    """``key=folder`` overrides among ``args`` that Hydra will create: writable or one line."""
    from ais_torch.formats.atomic import check_output_folder

    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in keys and key and value and "${" not in value:
            check_output_folder(os.path.expanduser(value), key.lstrip("+"))
