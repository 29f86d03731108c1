"""``ais-torch demo out=DIR``: write the built-in synthetic demo data set.

Gives a new user (and the tests) tomograms, training annotations and ground truth with no
download. Arguments are plain ``key=value`` pairs so the command reads the same as the Hydra
jobs without needing Hydra. Mistakes end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ais_torch.commands.shell import (
    Key,
    interrupted,
    key_names,
    parse_key_values,
    render_help,
    wants_help,
)
from ais_torch.errors import AisError, ConfigError
from ais_torch.training.synthetic import FEATURES, DemoFiles, write_demo

__all__ = ["DemoFiles", "main", "write_demo"]

KEYS = (
    Key("out", "output folder (created)", "folder", "out=demo_data"),
    Key("n", "number of tomograms (tomogram i uses seed + i)", "tomograms", "n=4", "2"),
    Key("seed", "random seed (same seed, same voxels)", "integer", "seed=3", "0"),
    Key("shape", "tomogram size z,y,x (at least 24,80,80)", "voxels", "shape=32,128,128",
        "64,256,256"),
    Key("slices", "annotated z-slices per feature", "slices", "slices=4", "6"),
    Key("overwrite", "1/true rewrites existing files (otherwise they are kept)", "bool",
        "overwrite=1", "0"),
)  # fmt: skip
"""Every key of the command, once: the parser and ``--help`` both read it."""

_KEYS = key_names(KEYS)
USAGE = render_help(
    "usage: ais-torch demo out=DIR [n=2] [seed=0] [shape=64,256,256] [slices=6] [overwrite=0]",
    """\
Write synthetic cryo-ET tomograms (10 Å/voxel) with vesicle membranes, a carbon film edge,
membrane-bound "antibody" particles ~22 nm from the membrane and decoy particles, plus:
  annotations/<tomo>__<feature>.mrc  training labels on `slices` z-slices (0/1; 2 = ignore)
  truth/<tomo>__<feature>.mrc        dense ground truth
  <tomo>__antibody_truth.tsv/.star   true particle centres (x y z voxels)
  demo.json                          what was made
Existing files are kept (rerun is cheap) unless overwrite=1. Also runs as
python -m ais_torch.demo (and ais-torch-demo).""",
    KEYS,
)


class _UsageError(ConfigError):
    """A bad argument: reported with a pointer to --help."""


def _int(key: str, value: str, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise _UsageError(f"{key}={value!r} is not a whole number") from None
    if n < minimum:
        raise _UsageError(f"{key}={n} must be ≥ {minimum}")
    return n


def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise _UsageError(f"{key}={value!r}: use 1/true or 0/false")


def _shape(value: str) -> tuple[int, int, int]:
    parts = value.replace("x", ",").replace("(", "").replace(")", "").split(",")
    try:
        dims = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        dims = ()
    if len(dims) != 3:
        raise _UsageError(f"shape={value!r}: give three numbers z,y,x, e.g. shape=64,256,256")
    return dims  # type: ignore[return-value]


def parse_args(argv: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs → keyword arguments of :func:`write_demo` (``out`` → ``out_dir``)."""
    try:
        given = parse_key_values(argv, _KEYS, example="out=demo_data")
    except ConfigError as err:
        raise _UsageError(str(err)) from None
    if not given.get("out", "").strip():
        raise _UsageError("missing out=DIR (the folder to write the demo data to)")
    kwargs: dict[str, object] = {"out_dir": Path(given["out"]).expanduser()}
    if "n" in given:
        kwargs["n_tomograms"] = _int("n", given["n"], 1)
    if "seed" in given:
        kwargs["seed"] = _int("seed", given["seed"], 0)
    if "shape" in given:
        kwargs["shape"] = _shape(given["shape"])
    if "slices" in given:
        kwargs["annotated_slices"] = _int("slices", given["slices"], 1)
    if "overwrite" in given:
        kwargs["overwrite"] = _bool("overwrite", given["overwrite"])
    return kwargs


def _report(files: list[DemoFiles], out_dir: Path) -> None:
    for f in files:
        state = "kept (already there)" if f.skipped else "wrote"
        slices = ", ".join(f"{k} z={v}" for k, v in f.annotated_z.items())
        print(
            f"{f.name} (seed {f.seed}): {state} {f.tomogram}; {f.n_particles} particles, "
            f"{f.n_decoys} decoys; annotated {slices}"
        )
    print(
        f"ground truth: {out_dir / 'truth'}, annotations: {out_dir / 'annotations'} "
        f"(features: {', '.join(FEATURES)}); description: {out_dir / 'demo.json'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 bad arguments or unusable output folder)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):
        print(USAGE, end="")
        return 0
    try:
        kwargs = parse_args(args)
        files = write_demo(**kwargs)  # type: ignore[arg-type]
    except _UsageError as err:
        print(f"ais_torch.demo: error: {err} (see --help)", file=sys.stderr)
        return 2
    except AisError as err:
        print(f"ais_torch.demo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        raise interrupted() from None
    except OSError as err:  # e.g. a read-only or full output folder
        where = err.filename or kwargs.get("out_dir")
        print(
            f"ais_torch.demo: error: cannot write {where}: {err.strerror or err}", file=sys.stderr
        )
        return 2
    _report(files, Path(kwargs["out_dir"]).resolve())  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
