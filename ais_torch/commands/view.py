"""``ais-torch view …``: look at a tomogram with its segmentations, picks and meshes.

Interactive when a display exists; ``screenshot=PNG`` or ``turntable=GIF|MP4`` render off
screen (EGL, no X server needed), e.g. on a cluster node. The scene itself is built by
:func:`ais_torch.viewer.scene.build_scene`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ais_torch.commands.shell import (
    Key,
    command_main,
    key_names,
    parse_key_values,
    render_help,
)
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.viewer.scene import prefer_egl

KEYS = (
    Key("tomogram", "the tomogram .mrc (a grey slice through it is shown)", "file",
        "tomogram=TS_01.mrc"),
    Key("segmentations", "<tomo>__<feature>.mrc files, shown as isosurfaces", "list of files",
        "segmentations=[TS_01__Membrane.mrc,TS_01__Ribosome.mrc]"),
    Key("picks", "particle files: .star (RELION), .tsv/.txt (x y z voxels)", "list of files",
        "picks=[TS_01__Ribosome_coords.star]"),
    Key("meshes", ".obj files (from ais-torch mesh or the original Ais)", "list of files",
        "meshes=[TS_01__Membrane.obj]"),
    Key("data", "a folder: its tomogram, that tomogram's segmentations, picks and meshes",
        "folder", "data=segmented/"),
    Key("tomo", "with data=: which tomogram (default: the first)", "name", "tomo=TS_01"),
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
    Key("pick_radius", "sphere radius of each pick", "nm", "pick_radius=8", "4"),
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
       ais-torch view data=DIR [tomo=NAME] [screenshot=out.png | turntable=out.gif] …""",
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
    from ais_torch.formats.naming import split_list
    from ais_torch.viewer.scene import (
        build_scene,
        has_display,
        load_scene,
        save_screenshot,
        save_turntable,
        scan_folder,
    )

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
    screenshot, turntable = args.get("screenshot"), args.get("turntable")
    if not screenshot and not turntable and not has_display():
        raise AisInputError(
            "no display (DISPLAY is not set): add screenshot=out.png or turntable=out.gif to "
            "render off screen, or connect with X forwarding (ssh -X)"
        )
    pick_radius = float(args["pick_radius"]) if args.get("pick_radius") else 4.0
    voxel = float(args["voxel_size_A"]) if args.get("voxel_size_A") else None
    scene = load_scene(
        tomogram=tomogram,
        segmentations=segs,
        picks=picks,
        meshes=meshes,
        models=split_list(args.get("models", "")),
        level=args.get("level"),
        min_size=args.get("min_size"),
        voxel_size_A=voxel,
        smooth=_int(args, "smooth") or 0,
        bin=_int(args, "bin"),
        slice_axis=args.get("slice_axis", "z"),
        slice_index=_int(args, "slice"),
        pick_radius_nm=pick_radius,
        window_size=_window(args.get("window")),
    )
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


def _run(argv: Sequence[str]) -> int:
    args = parse_key_values(argv, _KEYS, example="tomogram=T.mrc screenshot=out.png")
    if not any(args.get(k) for k in ("tomogram", "segmentations", "data")):
        raise ConfigError("nothing to show: give tomogram=T.mrc, segmentations=[…] or data=DIR")
    if args.get("screenshot") or args.get("turntable"):
        prefer_egl()
    return view(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or exits 2 with one line on a usable error."""
    return command_main(argv, USAGE, _run)


if __name__ == "__main__":
    sys.exit(main())
