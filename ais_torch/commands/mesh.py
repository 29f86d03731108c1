"""``python -m ais_torch.mesh data=DIR out=DIR``: segmentations → one .obj surface file each.

Why: Blender, ChimeraX and the original Ais's scene export all take .obj meshes; making them
on a cluster node next to the segmentations saves moving whole volumes around. The meshing
itself is :func:`ais_torch.meshes.surface.segmentation_mesh`; this shell finds the files,
reads them and writes ``<out>/<tomo>__<feature>.obj``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ais_torch.commands.shell import command_main, number_arg, parse_key_values
from ais_torch.errors import ConfigError
from ais_torch.formats.naming import find_results, split_list

USAGE = """\
usage: python -m ais_torch.mesh data=DIR|GLOB|FILE[,FILE…] [feature=NAME[,NAME…]] [level=0.5]
                                [min_size=0] [out=DIR] [units=nm|A] [frame=center|map]
                                [smooth=0] [decimate=0] [bin=1] [models=M.scnm[,…]]

Make one .obj surface mesh per segmentation <tomo>__<feature>.mrc (as written by the original
Ais or ais_torch.segment): marching cubes on every connected component at or above the level,
dust removed. Output <out>/<tomo>__<feature>.obj (first line '# colour r g b').

  data      folder (all *__*.mrc in it), glob pattern, or comma-separated .mrc files
  feature   only these features (the part after '__'); default all
  level     probability 0–1 (e.g. 0.5) or grey level 1–255 (e.g. 128); default 0.5
  min_size  remove components smaller than this many voxels ("dust"); default 0 (keep all)
  out       output folder; default: next to each segmentation
  units     nm (default, like the original) or A
  frame     center: origin at the volume centre (default, like the original);
            map: the MRC header frame (voxel × size + origin), overlays the map in ChimeraX
  smooth    Taubin smoothing iterations (e.g. 20); default 0
  decimate  fraction of triangles to remove after smoothing, 0 ≤ d < 1 (e.g. 0.5)
  bin       block-average the volume by this factor first (faster, coarser); default 1
  models    .scnm files whose colours the .obj files get (matched by title = feature)

A segmentation with nothing at or above the level gives an .obj holding only its header
comments (a valid, empty mesh), and a line saying so.
"""

_KEYS = (
    "data",
    "feature",
    "level",
    "min_size",
    "out",
    "units",
    "frame",
    "smooth",
    "decimate",
    "bin",
    "models",
)


def _run(argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from ais_torch.formats.mrc import read_volume
    from ais_torch.formats.naming import split_name
    from ais_torch.meshes.surface import (
        FRAMES,
        normalise_units,
        probability_level,
        segmentation_mesh,
        write_obj,
    )
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
        vol = read_volume(path, check_finite=False)
        mesh = segmentation_mesh(
            vol.data,
            voxel_size_A=vol.voxel_size_A,
            origin_A=vol.origin_A,
            progress=True,
            **options,  # type: ignore[arg-type]
        )
        target = (out_dir or path.parent) / f"{path.stem}.obj"
        write_obj(target, mesh, colour=colours[split_name(path)[1]], source=path.name)
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
