"""Time and peak memory of one interaction rule (3d sphere and 2d disk) on a synthetic volume.

Usage: python benchmarks/bench_interactions.py [Z Y X [DTYPE [no-tiles]]] ; prints a table.
Partner = random 'membrane' planes (uint8 0/255), parent = uniform (DTYPE, default uint8).
"""

import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from ais_torch.interactions.rules import Interaction, apply_interaction

shape = tuple(int(v) for v in sys.argv[1:4]) if len(sys.argv) > 3 else (128, 512, 512)
rng = np.random.default_rng(0)
dtype = np.dtype(sys.argv[4]) if len(sys.argv) > 4 else np.dtype(np.uint8)
partner = np.zeros(shape, np.uint8)
planes = [(*rng.normal(size=3), rng.uniform(0, 200)) for _ in range(6)]  # tilted 'membranes'
yy, xx = np.ogrid[: shape[1], : shape[2]]
for z in range(shape[0]):
    for a, b, c, o in planes:
        d = np.abs(a * z + b * yy + c * xx - o) / np.sqrt(a * a + b * b + c * c)
        partner[z][d < 1.5] = 255
parent = np.full(shape, 200 if dtype == np.uint8 else 0.8, dtype)
n = np.prod(shape)
print(f"volume {shape} = {n / 1e6:.0f} M voxels, partner fraction {np.mean(partner > 0):.3f}")
print(
    f"{'geometry':>8} {'method':>7} {'R (px)':>7} {'seconds':>8} {'Mvox/s':>7}",
    f"{'peak extra MB':>14}",
)
runs = [
    ("2d", "auto", 10),
    ("2d", "auto", 30),
    ("3d", "slices", 10),
    ("3d", "slices", 30),
    ("3d", "tiles", 10),
    ("3d", "tiles", 30),
]
if "no-tiles" in sys.argv:
    runs = [r for r in runs if r[1] != "tiles"]
for geometry, method, radius in runs:
    work = parent  # in place; the values do not change the work done
    rule = Interaction("A", "B", "avoid", radius, 0.5, geometry)
    tracemalloc.start()
    t = time.perf_counter()
    apply_interaction(work, partner, rule, voxel_size_A=10.0, method=method)
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rate = n / dt / 1e6
    print(f"{geometry:>8} {method:>7} {radius:>7} {dt:>8.1f} {rate:>7.1f} {peak / 1e6:>14.0f}")
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
print(f"process max RSS {rss_mb:.0f} MB; cpu cores {os.cpu_count()}")
