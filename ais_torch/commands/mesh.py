"""``ais-torch mesh data=DIR out=DIR``: segmentations → one .obj surface file each.

Why: Blender, ChimeraX and the original Ais's scene export all take .obj meshes; making them
on a cluster node next to the segmentations saves moving whole volumes around. The meshing
itself is :func:`ais_torch.meshes.surface.segmentation_mesh`; this shell finds the files,
reads them and writes ``<out>/<tomo>__<feature>.obj``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ais_torch.commands.shell import (
    Key,
    command_main,
    key_names,
    number_arg,
    parse_key_values,
    render_help,
)
from ais_torch.errors import ConfigError
from ais_torch.formats.naming import find_results, split_list

KEYS = (
    Key("data", "segmentations: a folder (all *__*.mrc in it), a glob, or comma-separated .mrc "
        "files", "file/folder", "data=segmented/"),
    Key("feature", "only these features (the part after '__'); default all", "names",
        "feature=Membrane,Carbon"),
    Key("level", "surface level: probability 0-1 or grey level 1-255", "probability or grey",
        "level=128", "0.5"),
    Key("min_size", "remove components smaller than this (\"dust\"); 0 keeps all", "voxels",
        "min_size=100", "0"),
    Key("out", "output folder for <tomo>__<feature>.obj; default next to each segmentation",
        "folder", "out=meshes/"),
    Key("units", "vertex units: nm (like the original) or A", "nm | Å", "units=A", "nm"),
    Key("frame", "center: origin at the volume centre (like the original); map: the MRC header "
        "frame, overlays the map in ChimeraX", "", "frame=map", "center"),
    Key("smooth", "Taubin smoothing iterations", "iterations", "smooth=20", "0"),
    Key("decimate", "fraction of triangles removed after smoothing, 0 <= d < 1", "fraction",
        "decimate=0.5", "0"),
    Key("bin", "block-average the volume by this factor first (faster, coarser)", "factor",
        "bin=2", "1"),
    Key("models", ".scnm files whose colours the meshes get (matched by title = feature)",
        "files", "models=Membrane.scnm,Carbon.scnm"),
)  # fmt: skip
"""Every key of the command, once: the parser and ``--help`` both read it."""

_KEYS = key_names(KEYS)
USAGE = render_help(
    "usage: ais-torch mesh data=SEGMENTATIONS [feature=NAME[,NAME…]] [out=DIR] [key=value ...]",
    """\
Make one .obj surface mesh per segmentation <tomo>__<feature>.mrc: marching cubes on every
connected component at or above the level, dust removed; <out>/<tomo>__<feature>.obj starts
with '# colour r g b'. A segmentation with nothing at the level gives a valid, empty mesh and a
line saying so. Also runs as python -m ais_torch.mesh.""",
    KEYS,
)


def _run(argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from ais_torch.formats.naming import split_name
    from ais_torch.meshes.surface import FRAMES, mesh_file, normalise_units, probability_level
    from ais_torch.viewer.scene import assign_colours, model_colours

    args = parse_key_values(argv, _KEYS, example="data=segmented/ level=0.5 min_size=100")
    if not args.get("data"):
        raise ConfigError("missing data=FOLDER (the segmentations to mesh; see --help)")
    level = number_arg(args, "level", 0.5)
    probability_level(level)  # validate before reading anything
    units = normalise_units(args.get("units", "nm"))
    frame = args.get("frame", "center")
    if frame not in FRAMES:
        raise ConfigError(f"frame={frame!r}: choose one of {', '.join(FRAMES)}")
    options = {
        "level": level,
        "min_size": number_arg(args, "min_size", 0, int),
        "smooth": number_arg(args, "smooth", 0, int),
        "decimate": number_arg(args, "decimate", 0.0),
        "bin": number_arg(args, "bin", 1, int),
        "units": units,
        "frame": frame,
    }
    features = split_list(args["feature"]) if args.get("feature") else None
    files = find_results(args["data"], features)
    out_dir = Path(args["out"]).expanduser() if args.get("out") else None
    names = sorted({split_name(p)[1] for p in files})
    models = split_list(args["models"]) if args.get("models") else []
    colours = assign_colours(names, model_colours(models))  # type: ignore[arg-type]

    for path in tqdm(files, desc="meshing", unit="file", disable=len(files) < 2):
        target = (out_dir or path.parent) / f"{path.stem}.obj"
        mesh = mesh_file(
            path,
            target,
            colour=colours[split_name(path)[1]],
            progress=True,
            **options,  # type: ignore[arg-type]
        )
        if mesh.is_empty:
            info = mesh.info
            why = (
                f"all {mesh.n_dust} component(s) are smaller than min_size={info['min_size']}"
                if mesh.n_dust
                else f"nothing at or above level {info['level']:.3g} (maximum "
                f"{info['max_value']:.3g} on the 0–1 scale)"
            )
            print(f"{path.name}: {why}; wrote an empty mesh {target}")
        else:
            print(
                f"{path.name}: {mesh.n_components} surface(s), {len(mesh.faces)} triangles, "
                f"{mesh.n_dust} dust component(s) removed → {target}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or exits 2 with one line on a usable error."""
    return command_main(argv, USAGE, _run)


if __name__ == "__main__":
    sys.exit(main())
