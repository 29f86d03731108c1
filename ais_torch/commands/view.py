"""``ais-torch view …``: look at a tomogram with its segmentations, picks and meshes.

Interactive when a display exists; ``screenshot=PNG`` or ``turntable=GIF|MP4`` render off
screen (EGL, no X server needed), e.g. on a cluster node. The scene itself is built by
:func:`ais_torch.viewer.scene.build_scene`; ``data=project.json`` shows one run of a copick
project (:mod:`ais_torch.viewer.copick_run`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.commands.shell import (
    Key,
    command_main,
    key_names,
    parse_key_values,
    render_help,
)
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.viewer.scene import prefer_egl

if TYPE_CHECKING:
    from ais_torch.viewer.scene import Scene

KEYS = (
    Key("tomogram", "the tomogram .mrc (a grey slice through it is shown)", "file",
        "tomogram=TS_01.mrc"),
    Key("segmentations", "<tomo>__<feature>.mrc files, shown as isosurfaces", "list of files",
        "segmentations=[TS_01__Membrane.mrc,TS_01__Ribosome.mrc]"),
    Key("picks", "particle files: .star (RELION), .tsv/.txt (x y z voxels)", "list of files",
        "picks=[TS_01__Ribosome_coords.star]"),
    Key("meshes", ".obj files (from ais-torch mesh or the original Ais)", "list of files",
        "meshes=[TS_01__Membrane.obj]"),
    Key("data", "a folder: its tomogram, that tomogram's segmentations, picks and meshes; or "
        "a copick project config .json: one run's tomogram, segmentations and picks",
        "folder/file", "data=segmented/"),
    Key("tomo", "with data=: which tomogram (default: the first); copick: the run", "name",
        "tomo=TS_01"),
    Key("copick.runs", "copick data: the run to show (the first given; default: the first run)",
        "list", "copick.runs=[TS_001]"),
    Key("copick.voxel_spacing", "copick data: spacing to show (default: the one with the most "
        "segmentations, then the coarsest)", "Å", "copick.voxel_spacing=10.012"),
    Key("copick.tomo_type", "copick data: tomogram type (default: the only one, else the "
        "first by name)", "", "copick.tomo_type=wbp"),
    Key("copick.user_id", "copick data: show only segmentations and picks by this user "
        "(default: everyone's)", "", "copick.user_id=ais-torch"),
    Key("copick.session_id", "copick data: show only this session's segmentations and picks",
        "", "copick.session_id=0"),
    Key("models", ".scnm files: a feature takes the colour of the model with its title", "files",
        "models=Membrane.scnm"),
    Key("level", "isosurface level, one or per feature", "probability 0-1 or grey 1-255",
        "level=membrane:0.6,antibody:0.4", "0.5"),
    Key("min_size", "hide components smaller than this (\"dust\"); same forms as level",
        "voxels", "min_size=50", "0"),
    Key("smooth", "Taubin smoothing iterations for the isosurfaces", "iterations", "smooth=15",
        "0"),
    Key("bin", "display binning (default: the smallest with the largest side <= 256 voxels)",
        "factor", "bin=1"),
    Key("slice_axis", "axis of the grey slice: z, y or x", "", "slice_axis=y", "z"),
    Key("slice", "index of the slice shown (default: the middle)", "voxels", "slice=40"),
    Key("pick_radius", "sphere radius of each pick (copick: default the object's radius)", "nm",
        "pick_radius=8", "4"),
    Key("window", "image size", "pixels WxH", "window=1600x1200", "1024x768"),
    Key("screenshot", "render off screen and write this PNG (no display needed)", "file",
        "screenshot=view.png"),
    Key("turntable", "write a full turn as .gif (imageio) or .mp4 (imageio-ffmpeg)", "file",
        "turntable=turn.gif"),
    Key("frames", "turntable frames", "frames", "frames=36", "72"),
    Key("voxel_size_A", "override the header voxel size", "Å", "voxel_size_A=10"),
)  # fmt: skip
"""Every key of the command, once: the parser and ``--help`` both read it."""

_KEYS = key_names(KEYS)
USAGE = render_help(
    """\
usage: ais-torch view tomogram=T.mrc [segmentations=[A.mrc,B.mrc]] [picks=[P.star]] [meshes=[M.obj]]
       ais-torch view data=DIR [tomo=NAME] [screenshot=out.png | turntable=out.gif] …
       ais-torch view data=project.json [copick.runs=[TS_001]] …""",
    """\
Show a tomogram slice, each segmentation as an isosurface in its feature's colour, picked
particles as spheres and .obj meshes, with a legend. Without screenshot=/turntable= a window
opens (needs a display); with them the scene is rendered off screen (EGL) into the file.
Lists: [a.mrc,b.mrc] or a,b. Also runs as python -m ais_torch.view.""",
    KEYS,
)


def _int(args: dict[str, str], key: str) -> int | None:
    if not args.get(key):
        return None
    try:
        return int(args[key])
    except ValueError:
        raise ConfigError(f"{key}={args[key]!r} is not a whole number") from None


def _float(args: dict[str, str], key: str) -> float | None:
    if not args.get(key):
        return None
    try:
        return float(args[key])
    except ValueError:
        raise ConfigError(f"{key}={args[key]!r} is not a number") from None


def _window(value: str | None) -> tuple[int, int]:
    if not value:
        return (1024, 768)
    try:
        w, h = (int(v) for v in value.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ConfigError(f"window={value!r}: give width x height, e.g. 1600x1200") from None
    if w < 16 or h < 16:
        raise ConfigError(f"window={value!r}: too small")
    return w, h


def _unique(paths: list[str]) -> list[str]:
    """Drop repeats (the same file given and also found in data=DIR)."""
    seen: dict[Path, str] = {}
    for p in paths:
        seen.setdefault(Path(p).expanduser().resolve(), p)
    return list(seen.values())


def view(args: dict[str, str]) -> int:
    """Load the scene, then show it or write the requested files."""
    from ais_torch.formats.copick import is_copick_config
    from ais_torch.formats.naming import split_list
    from ais_torch.viewer.scene import build_scene, has_display, save_screenshot, save_turntable

    screenshot, turntable = args.get("screenshot"), args.get("turntable")
    if not screenshot and not turntable and not has_display():
        raise AisInputError(
            "no display (DISPLAY is not set): add screenshot=out.png or turntable=out.gif to "
            "render off screen, or connect with X forwarding (ssh -X)"
        )
    common = {
        "models": split_list(args.get("models", "")),
        "level": args.get("level"),
        "min_size": args.get("min_size"),
        "smooth": _int(args, "smooth") or 0,
        "bin": _int(args, "bin"),
        "slice_axis": args.get("slice_axis", "z"),
        "slice_index": _int(args, "slice"),
        "window_size": _window(args.get("window")),
    }
    radius = _float(args, "pick_radius")
    if args.get("data") and is_copick_config(args["data"]):
        scene = _copick_scene(args, common, radius)
    else:
        scene = _file_scene(args, common, 4.0 if radius is None else radius)
    b = scene.display_bin()
    if b > 1:
        print(
            f"displaying at bin {b} (volume {scene.shape_zyx[::-1]} x/y/z voxels); "
            "bin=1 shows full resolution"
        )
    off_screen = bool(screenshot or turntable)
    plotter = build_scene(scene, off_screen=off_screen)
    try:
        if screenshot:
            save_screenshot(plotter, screenshot)
            print(f"wrote {screenshot}")
        if turntable:
            save_turntable(plotter, turntable, n_frames=_int(args, "frames") or 72)
            print(f"wrote {turntable}")
        if not off_screen:
            plotter.show(title=scene.title or "ais_torch")
    finally:
        plotter.close()
    return 0


def _copick_scene(args: dict[str, str], common: dict[str, object], radius: float | None) -> Scene:
    """One run of the copick project ``data=`` (file keys do not apply to it)."""
    from ais_torch.formats.naming import split_list
    from ais_torch.viewer.copick_run import RunChoice, load_copick_scene

    files = [k for k in ("tomogram", "segmentations", "picks", "meshes") if args.get(k)]
    if files:
        raise ConfigError(
            f"data={args['data']} is a copick project; {', '.join(f'{k}=' for k in files)} "
            "cannot be added to it (show files with data=FOLDER or tomogram=/segmentations=)"
        )
    runs = split_list(args.get("copick.runs", "")) or split_list(args.get("tomo", ""))
    choice = RunChoice(
        runs=tuple(runs) or None,
        voxel_spacing=_float(args, "copick.voxel_spacing"),
        tomo_type=args.get("copick.tomo_type") or None,
        user_id=args.get("copick.user_id") or None,
        session_id=args.get("copick.session_id") or None,
    )
    return load_copick_scene(args["data"], choice, pick_radius_nm=radius, say=print, **common)  # type: ignore[arg-type]


def _file_scene(args: dict[str, str], common: dict[str, object], radius: float) -> Scene:
    """The scene of files: tomogram=, segmentations=, picks=, meshes= and what data=DIR holds."""
    from ais_torch.formats.naming import split_list
    from ais_torch.viewer.scene import load_scene, scan_folder

    copick_keys = [k for k in args if k.startswith("copick.") and args[k]]
    if copick_keys:
        raise ConfigError(f"{copick_keys[0]}= applies to a copick project: give data=project.json")
    tomogram = args.get("tomogram") or None
    segs = split_list(args.get("segmentations", ""))
    picks = split_list(args.get("picks", ""))
    meshes = split_list(args.get("meshes", ""))
    if args.get("data"):
        found = scan_folder(
            args["data"], args.get("tomo") or (Path(tomogram).stem if tomogram else None)
        )
        tomogram = tomogram or (str(found.tomogram) if found.tomogram else None)
        segs += [str(p) for p in found.segmentations]
        picks += [str(p) for p in found.picks]
        meshes += [str(p) for p in found.meshes]
        others = f"; other tomograms there: {', '.join(found.others)} (tomo=NAME)"
        print(
            f"{args['data']}: {Path(tomogram).name if tomogram else 'no tomogram'}, "
            f"{len(found.segmentations)} segmentation(s), {len(found.picks)} pick file(s), "
            f"{len(found.meshes)} mesh(es){others if found.others else ''}"
        )
    segs, picks, meshes = (_unique(x) for x in (segs, picks, meshes))
    return load_scene(
        tomogram=tomogram,
        segmentations=segs,
        picks=picks,
        meshes=meshes,
        voxel_size_A=_float(args, "voxel_size_A"),
        pick_radius_nm=radius,
        **common,  # type: ignore[arg-type]
    )


def _run(argv: Sequence[str]) -> int:
    args = parse_key_values(argv, _KEYS, example="tomogram=T.mrc screenshot=out.png")
    if not any(args.get(k) for k in ("tomogram", "segmentations", "data")):
        raise ConfigError(
            "nothing to show: give tomogram=T.mrc, segmentations=[…], data=DIR or "
            "data=project.json (copick)"
        )
    if args.get("screenshot") or args.get("turntable"):
        prefer_egl()
    return view(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or exits 2 with one line on a usable error."""
    return command_main(argv, USAGE, _run)


if __name__ == "__main__":
    sys.exit(main())
