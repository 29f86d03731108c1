"""``ais-torch gui [TOMO.mrc ...] [MODEL.scnm ...]``: napari with the tomograms and the Ais panel.

A thin shell: files open through the plugin's reader (tomograms as images, models into the
widget, picks as points); the widget is docked on the right.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.errors import AisInputError

if TYPE_CHECKING:
    import napari

    from ais_torch.napari.widget import AisWidget

USAGE = "ais-torch gui [TOMO.mrc ...] [MODEL.scnm ...] [PICKS.star ...]"
ABOUT = """\
Open napari with the tomograms (memory-mapped, voxel size as scale) and the Ais panel docked:
paint a feature on a few slices, train, watch the model on the slice, correct, segment, pick.
Needs the napari extra: pip install -e ".[napari]". Step by step: docs/napari.md."""


def open_viewer(
    paths: Sequence[str | Path], *, show: bool = True
) -> tuple[napari.Viewer, AisWidget]:
    """A napari viewer with ``paths`` opened by our reader and the Ais widget docked."""
    try:
        import napari

        from ais_torch.napari.io import read_paths
        from ais_torch.napari.widget import AisWidget
    except ImportError as err:
        raise AisInputError(
            f"the GUI needs napari, magicgui and Qt ({err.name or err} is missing); install "
            'them with: pip install -e ".[napari]"'
        ) from None

    for p in map(Path, paths):
        if not p.is_file():
            raise AisInputError(f"{p}: file not found; give a tomogram (.mrc), model or picks")
    viewer = napari.Viewer(show=show)
    widget = AisWidget(viewer)
    for p in paths:
        for data, *rest in read_paths(str(p)):
            if data is None:
                continue
            kwargs, kind = rest
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.window.add_dock_widget(widget, name="Ais", area="right")
    return viewer, widget


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ais-torch gui",
        usage=USAGE,
        description=ABOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", help="tomograms, .scnm models, .star/.txt picks")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        open_viewer(args.files)
    except AisInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import napari

    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
