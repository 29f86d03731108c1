"""Run a battery of hostile inputs against the installed ``ais-torch`` commands; print a table.

Each case builds its input in code (no binary fixtures), runs ``ais-torch <verb> ...`` (the
installed package, as ``python -m ais_torch`` does) in a fresh folder, and reports the exit
code, the last line on stderr, the child's peak RSS (VmHWM, read by the child at exit) and any
file left behind besides the input. A case passes when the exit code and the line are the
expected ones, there is exactly one line on stderr, no traceback, and the peak RSS stays below
``--max-rss-mb``. Extend it by adding a :class:`Case` to :func:`cases`.

    python scripts/hostile_battery.py            # all cases, about 30 s
    python scripts/hostile_battery.py -k mrc     # only cases whose name contains 'mrc'

``tests/formats/test_hostile.py`` imports the builders below, so tests and battery share them.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GiB = 2**30

# -- builders: each returns the bytes of one hostile (or control) file -------------------------


def tar_bytes(
    members: dict[str, bytes], *, infos: dict[str, tarfile.TarInfo] | None = None
) -> bytes:
    """An uncompressed tar of ``members``; ``infos`` replaces a member's header (forged sizes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, payload in members.items():
            info = (infos or {}).get(name) or tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def metadata(**fields: object) -> bytes:
    return json.dumps({"title": "Membrane", "apix": 10.0, **fields}).encode()


def safetensors_bytes(
    shape: tuple[int, ...] = (1,), *, claim: tuple[int, ...] | None = None
) -> bytes:
    """A tiny safetensors payload of float32 zeros; ``claim`` forges the header's shape."""
    n = int(np.prod(shape))
    header = {"w": {"dtype": "F32", "shape": list(claim or shape), "data_offsets": [0, 4 * n]}}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(4 * n)


def ours(meta: bytes, weights: bytes | None = None) -> bytes:
    return tar_bytes(
        {"M_metadata.json": meta, "M_weights.safetensors": weights or safetensors_bytes()}
    )


def sparse_scnm() -> bytes:
    """A member whose PAX header says GNU sparse, 4 GiB when expanded, 10 bytes stored."""
    info = tarfile.TarInfo("M_weights.h5")
    info.pax_headers = {
        "GNU.sparse.size": str(4 * GiB),
        "GNU.sparse.map": "0,10",
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
    }
    return tar_bytes(
        {"M_metadata.json": metadata(), "M_weights.h5": b"x" * 10}, infos={"M_weights.h5": info}
    )


def forged_size_scnm(claim: int = 100 * 2**20) -> bytes:
    """A member header that claims ``claim`` bytes, followed by ten."""
    info = tarfile.TarInfo("M_weights.h5")
    info.size = claim
    return tarfile.TarInfo("M_metadata.json").tobuf() + info.tobuf(tarfile.PAX_FORMAT) + b"x" * 10


def gzip_scnm() -> bytes:
    """A gzip-compressed tar whose one member claims 512 MiB (of zeros: it would compress
    to half a megabyte; the first MiB is enough to be refused)."""
    info = tarfile.TarInfo("M_weights.h5")
    info.size = 512 * 2**20
    return gzip.compress(info.tobuf() + bytes(2**20), compresslevel=1)


def many_members_scnm(n: int = 200) -> bytes:
    return tar_bytes({f"M{i}_metadata.json": b"{}" for i in range(n)})


def deep_json_scnm(depth: int = 100_000) -> bytes:
    return tar_bytes({"M_metadata.json": b"[" * depth + b"]" * depth, "M_weights.h5": b"x"})


def h5_bomb() -> bytes:
    """A Keras-like .h5 whose one weight claims 16 TiB (an unallocated dataset: no bytes)."""
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as f:
        layer = f.create_group("model_weights/conv")
        layer.attrs["weight_names"] = [b"conv/kernel:0"]
        layer.create_dataset("conv/kernel:0", shape=(2**16, 2**16, 2**10), dtype="f4")
        f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {}})
    return out.getvalue()


def h5_bomb_scnm() -> bytes:
    return tar_bytes({"M_metadata.json": metadata(arch="VGGNet M"), "M_weights.h5": h5_bomb()})


def group(members: dict[str, bytes]) -> bytes:
    return tar_bytes(members)


def mrc_bytes(shape: tuple[int, ...] = (4, 8, 8), *, order: str = "<", **fields: int) -> bytes:
    """A float32 MRC file (header + zeros) with header ``fields`` forged after writing.

    ``fields`` are int32 header words by name: nx ny nz mx my mz ispg nsymbt; the data block is
    that of ``shape`` whatever the header then claims.
    """
    offsets = {"nx": 0, "ny": 4, "nz": 8, "mode": 12, "mx": 28, "my": 32, "mz": 36}
    offsets |= {"ispg": 88, "nsymbt": 92}
    nz, ny, nx = shape
    head = bytearray(1024)
    values = {"nx": nx, "ny": ny, "nz": nz, "mode": 2, "mx": nx, "my": ny, "mz": nz, "ispg": 1}
    values |= {"nsymbt": 0, **fields}
    for name, value in values.items():
        head[offsets[name] : offsets[name] + 4] = struct.pack(f"{order}i", value)
    for i, axis in enumerate((nx, ny, nz)):  # cell size: 10 Å per voxel
        head[40 + 4 * i : 44 + 4 * i] = struct.pack(f"{order}f", 10.0 * axis)
    head[64:76] = struct.pack(f"{order}3i", 1, 2, 3)
    head[208:212] = b"MAP "
    head[212:216] = b"\x44\x44\x00\x00" if order == "<" else b"\x11\x11\x00\x00"
    data = np.zeros(shape, np.dtype(f"{order}f4"))
    data[0, 0, 0] = 1.0
    return bytes(head) + data.tobytes()


def scnt_bytes(box: tuple[int, int] = (8, 8), *, claim: tuple[int, int] | None = None) -> bytes:
    """A one-box training set; ``claim`` forges the box's MRC header dimensions."""
    cy, cx = claim or box
    x = mrc_bytes((1, *box), nx=cx, ny=cy, mx=cx, my=cy)
    y = mrc_bytes((1, *box), nx=cx, ny=cy, mx=cx, my=cy)
    meta = json.dumps({"format_version": 1, "apix": 10.0, "features": ["f"]}).encode()
    return tar_bytes({"metadata.json": meta, "x_main/abc.mrc": x, "y/abc.mrc": y})


# -- the battery ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One hostile input: its file, the command that opens it, what must come out."""

    name: str
    file: str
    build: Callable[[], bytes]
    argv: Callable[[Path], list[str]]
    expect: str
    """A substring of the one line on stderr ('' for a control case that must succeed)."""
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)


def _info(path: Path) -> list[str]:
    return ["inspect", "info", str(path)]


def _evaluate(path: Path) -> list[str]:
    return ["evaluate", f"seg={path}", f"label={path}"]


def cases() -> list[Case]:
    """Every case; add yours here."""
    good_mrc = mrc_bytes()
    return [
        Case("scnm sparse member 4 GiB", "m.scnm", sparse_scnm, _info, "sparse"),
        Case("scnm forged member size", "m.scnm", forged_size_scnm, _info, "holds only"),
        Case("scnm member over limit", "m.scnm", lambda: forged_size_scnm(3 * GiB), _info, "limit"),
        Case("scnm gzip bomb", "m.scnm", gzip_scnm, _info, "gzip-compressed"),
        Case("scnm 200 members", "m.scnm", many_members_scnm, _info, "archive members"),
        Case(
            "scnm unexpected member",
            "m.scnm",
            lambda: tar_bytes(
                {"M_metadata.json": metadata(), "M_weights.h5": b"x", "run.py": b"1"}
            ),
            _info,
            "unexpected archive member 'run.py'",
        ),
        Case("scnm JSON 100k deep", "m.scnm", deep_json_scnm, _info, "nested"),
        Case(
            "scnm hparams a list",
            "m.scnm",
            lambda: ours(metadata(arch_name="unet", arch_hparams=[1, 2])),
            _info,
            "'arch_hparams' should be an object",
        ),
        Case(
            "scnm dunder hparam",
            "m.scnm",
            lambda: ours(metadata(arch_name="unet", arch_hparams={"__class__": "os.system"})),
            _info,
            "'__class__' is not allowed",
        ),
        Case(
            "scnm box_size a string",
            "m.scnm",
            lambda: ours(metadata(arch_name="unet", box_size="64")),
            _info,
            "'box_size' should be a whole number",
        ),
        Case(
            "scnm safetensors shape forged",
            "m.scnm",
            lambda: ours(metadata(arch_name="unet"), safetensors_bytes(claim=(2**40,))),
            _info,
            "does not match bytes",
        ),
        Case("h5 dataset 16 TiB", "m.scnm", h5_bomb_scnm, _info, "stores only"),
        Case(
            "group with sparse model",
            "g.scnmgroup",
            lambda: group({"g_model_0.scnm": sparse_scnm()}),
            _info,
            "sparse",
        ),
        Case(
            "group unexpected member",
            "g.scnmgroup",
            lambda: group({"g_model_0.scnm": ours(metadata()), "x.sh": b"rm"}),
            _info,
            "unexpected archive member 'x.sh'",
        ),
        Case("mrc control (valid)", "t.mrc", lambda: good_mrc, _evaluate, "", code=0),
        Case(
            "mrc big-endian (valid)", "t.mrc", lambda: mrc_bytes(order=">"), _evaluate, "", code=0
        ),
        Case(
            "mrc extended header 2 GiB",
            "t.mrc",
            lambda: mrc_bytes(nsymbt=2**31 - 1),
            _evaluate,
            "extended header",
        ),
        Case("mrc negative dims", "t.mrc", lambda: mrc_bytes(nx=-5), _evaluate, "must be > 0"),
        Case(
            "mrc dims overflow int64",
            "t.mrc",
            lambda: mrc_bytes(nx=2**31 - 1, ny=2**31 - 1, nz=2**31 - 1),
            _evaluate,
            "truncated",
        ),
        Case(
            "mrc 4-D stack",
            "t.mrc",
            lambda: mrc_bytes(ispg=401, mz=2),
            _evaluate,
            "4-D",
        ),
        Case(
            "mrc volume stack mz=0",
            "t.mrc",
            lambda: mrc_bytes(ispg=401, mz=0),
            _evaluate,
            "volume stack",
        ),
        Case(
            "mrc non-ASCII path (valid)",
            "tomogramme_été_Å.mrc",
            lambda: good_mrc,
            _evaluate,
            "",
            code=0,
        ),
    ]


@dataclass
class Result:
    case: Case
    code: int
    stderr: list[str]
    peak_mb: float
    seconds: float
    left: list[str]

    @property
    def ok(self) -> bool:
        if self.code != self.case.code or any("Traceback" in line for line in self.stderr):
            return False
        if self.case.code == 0:
            return True
        return len(self.stderr) == 1 and self.case.expect in self.stderr[0]


CHILD = """
import atexit, os, sys
def peak():
    with open('/proc/self/status') as fh:
        hwm = [line.split()[1] for line in fh if line.startswith('VmHWM:')]
    with open(os.environ['HOSTILE_PEAK_FILE'], 'w') as out:
        out.write(hwm[0] if hwm else '0')
atexit.register(peak)
from ais_torch.commands import main
sys.argv = ['ais-torch', *sys.argv[1:]]
sys.exit(main())
"""
"""``python -m ais_torch`` plus a note of the process's own peak RSS (VmHWM) at exit: unlike
``ru_maxrss``, VmHWM starts afresh at exec, so a big parent (pytest) does not inflate it."""


def run_case(case: Case, folder: Path) -> Result:
    """Run one case in ``folder``: exit code, stderr lines, peak RSS, files left behind."""
    folder.mkdir(parents=True)
    path = folder / case.file
    path.write_bytes(case.build())
    before = {p.name for p in folder.iterdir()}
    peak_file = folder.parent / f"{folder.name}.peak"
    env = {**os.environ, **case.env, "HOSTILE_PEAK_FILE": str(peak_file)}
    env.pop("AIS_TORCH_DEBUG", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *case.argv(path)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line]
    peak_kb = int(peak_file.read_text() or 0) if peak_file.exists() else 0
    left = sorted({p.name for p in folder.iterdir()} - before)
    return Result(case, proc.returncode, lines, peak_kb / 1024, seconds, left)


def table(results: list[Result], max_rss_mb: float) -> str:
    rows = [("case", "exit", "peak RSS", "s", "left", "ok", "last line on stderr")]
    for r in results:
        ok = r.ok and r.peak_mb <= max_rss_mb and not r.left
        last = (r.stderr[-1] if r.stderr else "-").replace(str(Path(tempfile.gettempdir())), "$TMP")
        rows.append(
            (
                r.case.name,
                str(r.code),
                f"{r.peak_mb:.0f} MB",
                f"{r.seconds:.1f}",
                ",".join(r.left) or "-",
                "ok" if ok else "FAIL",
                last[:150],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:6], widths, strict=True)) + "  " + row[6]
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--max-rss-mb", type=float, default=400.0, help="peak RSS allowed per case")
    args = parser.parse_args(argv)
    chosen = [c for c in cases() if args.k.lower() in c.name.lower()]
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        results = [run_case(c, Path(tmp) / f"case{i}") for i, c in enumerate(chosen)]
    print(table(results, args.max_rss_mb))
    failed = [r for r in results if not (r.ok and r.peak_mb <= args.max_rss_mb and not r.left)]
    print(f"\n{len(results) - len(failed)}/{len(results)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
