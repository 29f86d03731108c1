"""One thin shell per verb: parse the command line, call the library, print what happened.

``ais-torch <verb>`` (this module's :func:`main`), ``python -m ais_torch <verb>`` and
``python -m ais_torch.<verb>`` all land here; nothing else imports this package. Verb modules
are imported only when run, so ``ais-torch --help`` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

PROG = "ais-torch"

VERBS: dict[str, tuple[str, str]] = {
    "train": ("train", "train one model on annotated slices or .scnt boxes (Hydra)"),
    "segment": ("segment", "segment whole tomograms with one or more models (Hydra)"),
    "pick": ("pick", "pick particle coordinates from segmentations (Hydra)"),
    "mesh": ("mesh", "turn segmentations into .obj surface meshes"),
    "view": ("view", "show or render a tomogram with its segmentations, picks and meshes"),
    "evaluate": ("evaluate", "score a segmentation (Dice) or picks (F1) against the truth"),
    "export": ("export", "convert a model to ONNX or to a .scnm the original Ais opens"),
    "inspect": ("inspect", "show what a model file holds and whether it is safe to open"),
    "demo": ("demo", "write the synthetic demo tomograms, annotations and truth"),
    "gui": ("ais_torch.napari.launch", "napari with a tomogram and the Ais panel (napari extra)"),
}
"""verb → (module under ais_torch.commands, or a full module name for a verb that lives in a
package above this one, like the napari plugin; one line for ``ais-torch --help``)."""

ALIASES = {"models": "inspect"}
"""Older spellings: ``python -m ais_torch.models info M.scnm`` = ``ais-torch inspect info …``."""


def overview() -> str:
    """The text of ``ais-torch --help``: every verb with one line."""
    width = max(len(v) for v in VERBS) + 2
    rows = [f"  {verb:<{width}}{line}" for verb, (_, line) in VERBS.items()]
    return "\n".join(
        [
            f"usage: {PROG} <verb> [key=value ...]      ({PROG} <verb> --help: its keys)",
            "",
            "Ais for PyTorch: train small CNNs on a few annotated slices, then segment, pick,",
            "mesh and view whole cryo-ET tomograms.",
            "",
            "verbs:",
            *rows,
            "",
            "Each verb also runs as python -m ais_torch.<verb> (e.g. python -m ais_torch.train).",
            "Documentation: README.md and docs/ (docs/config.md lists every key).",
        ]
    )


def run_verb(verb: str, argv: Sequence[str]) -> int:
    """Run one verb's ``main`` with ``argv`` (the words after the verb); its exit code."""
    name = VERBS[verb][0]
    module = importlib.import_module(name if "." in name else f"ais_torch.commands.{name}")
    sys.argv = [f"{PROG} {verb}", *argv]
    code = module.main(list(argv))
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``ais-torch <verb> …``; without a verb (or with ``--help``) the list of verbs."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(overview())
        return 0 if args else 2
    verb = ALIASES.get(args[0], args[0])
    if verb not in VERBS:
        print(
            f"error: {args[0]!r} is not a verb of {PROG}; choose one of {', '.join(VERBS)}",
            file=sys.stderr,
        )
        return 2
    return run_verb(verb, args[1:])
