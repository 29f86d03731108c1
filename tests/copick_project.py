"""A small local copick project built in code (static + overlay roots under tmp_path).

Shared by the copick tests of formats, segmentation and the commands; callers
``pytest.importorskip("copick")`` first so the core install still passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OBJECTS = [
    {"name": "membrane", "is_particle": False, "label": 1},
    {"name": "antibody", "is_particle": True, "label": 2, "radius": 60.0},
]


def tomogram(shape: tuple[int, int, int] = (6, 40, 48), seed: int = 0) -> np.ndarray:
    """Noise with a bright plane (a "membrane") and two dark blobs; float32 (z, y, x)."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(size=shape).astype(np.float32)
    vol[:, shape[1] // 2 - 1 : shape[1] // 2 + 1, :] += 3.0
    vol[:, 8:12, 8:12] -= 3.0
    vol[:, 28:32, 30:34] -= 3.0
    return vol


def make_project(
    root: Path,
    runs: dict[str, dict[float, dict[str, np.ndarray]]] | None = None,
    *,
    objects: list[dict[str, object]] | None = None,
) -> Path:
    """Write ``root/project.json`` and fill the *static* root: runs → spacings → tomo types.

    Default: one run ``TS_001`` with a 10 Å ``wbp`` tomogram from :func:`tomogram`.
    """
    import copick

    root.mkdir(parents=True, exist_ok=True)
    config = {
        "config_type": "filesystem",
        "name": "test project",
        "description": "built by tests/copick_project.py",
        "version": "1.0.0",
        "pickable_objects": objects if objects is not None else OBJECTS,
        "overlay_root": f"local://{root / 'overlay'}",
        "static_root": f"local://{root / 'static'}",
        "overlay_fs_args": {"auto_mkdir": True},
        "static_fs_args": {"auto_mkdir": True},
    }
    path = root / "project.json"
    # Fill through a config whose overlay is the static folder, as a data provider would.
    maker = {**config, "overlay_root": config["static_root"]}
    maker_path = root / "maker.json"
    maker_path.write_text(json.dumps(maker), encoding="utf-8")
    project = copick.from_file(str(maker_path))
    for run_name, spacings in (runs or {"TS_001": {10.0: {"wbp": tomogram()}}}).items():
        run = project.new_run(run_name)
        for size, tomos in spacings.items():
            vs = run.new_voxel_spacing(size)
            for tomo_type, data in tomos.items():
                vs.new_tomogram(tomo_type).from_numpy(data, levels=1)
    maker_path.unlink()
    path.write_text(json.dumps(config), encoding="utf-8")
    return path
