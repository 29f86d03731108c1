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
import signal
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


def tiny_model(path: Path, title: str = "Tiny") -> None:
    """A two-level U-Net of a few hundred weights saved as ``.scnm`` (milliseconds a slice)."""
    from ais_torch import archs
    from ais_torch.formats.scnm import ModelMetadata, save_scnm

    net = archs.build("unet_s", encoder=[[4]], bottleneck=[8], decoder=[[4]]).eval()
    hp = dict(net.hparams)
    save_scnm(path, net, ModelMetadata(title=title, apix=10.0, arch_name=net.arch_name,
                                       arch_hparams=hp))  # fmt: skip


def tomograms(folder: Path, shapes: dict[str, tuple[int, int, int]]) -> None:
    from ais_torch.formats.mrc import write_volume

    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        vol = rng.normal(size=shape).astype(np.float32)
        write_volume(folder / "tomos" / f"{name}.mrc", vol, voxel_size_A=10.0)


def mount_tmpfs(where: Path, options: str) -> None:
    """A tmpfs at ``where`` (root only); unmounted by :func:`run_case` after the case."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise Skip(f"cannot mount a tmpfs: {done.stderr.strip()}")


def segment_setup(
    title: str = "Tiny", shapes: dict[str, tuple[int, int, int]] | None = None, mount: str = ""
) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        tiny_model(folder / "m.scnm", title)
        tomograms(folder, shapes or {"a": (6, 32, 40)})
        if mount:
            mount_tmpfs(folder / "mnt", mount)

    return setup


def _segment(out: str) -> Callable[[Path], list[str]]:
    def argv(path: Path) -> list[str]:
        folder = path.parent
        return ["segment", f"model={folder / 'm.scnm'}", f"data={folder / 'tomos'}",
                f"out={folder / out}", "progress=false", "slab=1"]  # fmt: skip

    return argv


SEGMENT_INFO = ("segment:", "device:", "memory:", "done in", "wrote ")


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
    setup: Callable[[Path], None] | None = None
    """Builds what else the command needs in the case's folder (a model, tomograms, a mount);
    raise :class:`Skip` when the platform cannot."""
    signal: int = 0
    """Send this signal once a ``.partial`` file appears (writes are slowed to 0.2 s a slab)."""
    info: tuple[str, ...] = ()
    """Prefixes of the informational lines a command prints on stderr (not counted)."""
    max_rss_mb: float = 0.0
    """Peak RSS allowed for this case (0: ``--max-rss-mb``); cases that run a network import
    all of PyTorch and need more than a refused file does."""


class Skip(Exception):
    """A case this platform cannot run (e.g. no permission to mount a tmpfs)."""


def _info(path: Path) -> list[str]:
    return ["inspect", "info", str(path)]


def _evaluate(path: Path) -> list[str]:
    return ["evaluate", f"seg={path}", f"label={path}"]


def _lock(output: Path, host: str, age_s: float) -> None:
    """A lock as a run on ``host`` leaves it, its heartbeat ``age_s`` old."""
    output.parent.mkdir(parents=True, exist_ok=True)
    path = output.with_name(f".{output.name}.lock")
    path.write_text(f"4242 {host} {time.time() - age_s:.0f} -\n")
    os.utime(path, (time.time() - age_s,) * 2)


def _mesh(out: str) -> Callable[[Path], list[str]]:
    return lambda p: ["mesh", f"data={p.parent / 'segs'}", f"out={p.parent / out}"]


def _seg_file(folder: Path) -> None:
    """A segmentation to mesh: a 16³ uint8 cube of 255 in zeros."""
    from ais_torch.formats.mrc import write_volume

    vol = np.zeros((16, 16, 16), np.uint8)
    vol[4:12, 4:12, 4:12] = 255
    write_volume(folder / "segs" / "t__Tiny.mrc", vol, voxel_size_A=10.0)


def cases() -> list[Case]:
    """Every case; add yours here."""
    found = _cases()
    for c in found:
        if c.argv(Path("x"))[0] in ("segment", "mesh", "export") and not c.max_rss_mb:
            c.max_rss_mb = 1500.0  # PyTorch and a network, not a file, set these peaks
    return found


def _cases() -> list[Case]:
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
            "segment out= is a file",
            "seg",
            lambda: b"not a folder",
            _segment("seg"),
            "out=",
            setup=segment_setup(),
        ),
        Case(
            "segment out= under a file",
            "seg",
            lambda: b"not a folder",
            _segment("seg/sub"),
            "cannot be created",
            setup=segment_setup(),
        ),
        Case(
            "segment out= read-only",
            "note",
            lambda: b"",
            _segment("mnt/seg"),
            "read-only file system",
            setup=segment_setup(mount="ro,size=1m"),
        ),
        Case(
            "segment disk full (1 MiB tmpfs)",
            "note",
            lambda: b"",
            _segment("mnt/seg"),
            "no space left on device while writing",
            code=1,
            setup=segment_setup(shapes={"a": (8, 256, 256)}, mount="size=1m"),
            info=(*SEGMENT_INFO, "1 tomogram(s) failed"),
        ),
        Case(
            "segment SIGTERM mid-write",
            "note",
            lambda: b"",
            _segment("seg"),
            "stopped by SIGTERM; files being written were not kept",
            code=143,
            setup=segment_setup(),
            signal=15,
            info=SEGMENT_INFO,
        ),
        Case(
            "segment SIGHUP mid-write",
            "note",
            lambda: b"",
            _segment("seg"),
            "stopped by SIGHUP; files being written were not kept",
            code=129,
            setup=segment_setup(),
            signal=1,
            info=SEGMENT_INFO,
        ),
        Case(
            "segment busy: other host's fresh lock",
            "note",
            lambda: b"",
            _segment("seg"),
            "busy in another run",
            code=75,
            setup=lambda f: (segment_setup()(f), _lock(f / "seg" / "a__Tiny.mrc", "node-b", 0)),
            info=(*SEGMENT_INFO, "busy:"),
        ),
        Case(
            "segment other host's lock, heartbeat 1 h old (valid)",
            "note",
            lambda: b"",
            _segment("seg"),
            "",
            code=0,
            setup=lambda f: (segment_setup()(f), _lock(f / "seg" / "a__Tiny.mrc", "node-b", 3600)),
        ),
        Case(
            "segment title 'CON' (valid, renamed)",
            "note",
            lambda: b"",
            _segment("seg"),
            "",
            code=0,
            setup=segment_setup(title="CON"),
        ),
        Case(
            "segment title of 300 characters (valid, cut)",
            "note",
            lambda: b"",
            _segment("seg"),
            "",
            code=0,
            setup=segment_setup(title="Membrane" * 40),
        ),
        Case("mesh out= is a file", "seg", lambda: b"x", _mesh("seg"), "out=", setup=_seg_file),
        Case(
            "export out= is a folder",
            "m.scnm",
            lambda: b"",
            lambda p: ["export", f"model={p}", f"out={p.parent}"],
            "is a folder",
            setup=lambda f: tiny_model(f / "m.scnm"),
        ),
        Case(
            "evaluate json= read-only",
            "t.mrc",
            lambda: good_mrc,
            lambda p: [*_evaluate(p), f"json={p.parent / 'mnt' / 's.json'}"],
            "read-only file system",
            setup=lambda f: mount_tmpfs(f / "mnt", "ro,size=1m"),
        ),
        Case(
            "pick out= is a file",
            "picks",
            lambda: b"x",
            lambda p: ["pick", f"data={p.parent / 'segs'}", "feature=Tiny", f"out={p}"],
            "out=",
            setup=_seg_file,
        ),
        Case(
            "train hydra.run.dir= read-only",
            "note",
            lambda: b"",
            lambda p: ["train", f"hydra.run.dir={p.parent / 'mnt' / 'run'}"],
            "read-only file system",
            setup=lambda f: mount_tmpfs(f / "mnt", "ro,size=1m"),
        ),
        Case(
            "demo out= is a file", "d", lambda: b"x", lambda p: ["demo", f"out={p}"], "not a folder"
        ),
        Case(
            "export out= read-only",
            "m.scnm",
            lambda: b"",
            lambda p: ["export", f"model={p}", f"out={p.parent / 'mnt' / 'm.onnx'}"],
            "read-only file system",
            setup=lambda f: (tiny_model(f / "m.scnm"), mount_tmpfs(f / "mnt", "ro,size=1m")),
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

    skipped: str = ""

    @property
    def lines(self) -> list[str]:
        """stderr without the command's informational lines (the one line must remain)."""
        return [ln for ln in self.stderr if not ln.startswith(self.case.info or ("\0",))]

    @property
    def ok(self) -> bool:
        if self.skipped:
            return True
        if self.code != self.case.code or any("Traceback" in line for line in self.stderr):
            return False
        if self.case.code == 0:
            return True
        return len(self.lines) == 1 and self.case.expect in self.lines[0]


CHILD = """
import atexit, os, sys
def peak():
    with open('/proc/self/status') as fh:
        hwm = [line.split()[1] for line in fh if line.startswith('VmHWM:')]
    with open(os.environ['HOSTILE_PEAK_FILE'], 'w') as out:
        out.write(hwm[0] if hwm else '0')
atexit.register(peak)
if os.environ.get('HOSTILE_SLOW_WRITE'):  # so a signal finds a run mid-write
    import time
    from ais_torch.formats import mrc
    _write, _delay = mrc.VolumeWriter.write, float(os.environ['HOSTILE_SLOW_WRITE'])
    def _slow(self, z, values):
        time.sleep(_delay)
        _write(self, z, values)
    mrc.VolumeWriter.write = _slow
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
    try:
        try:
            if case.setup is not None:
                case.setup(folder)
        except Skip as why:
            return Result(case, 0, [], 0.0, 0.0, [], skipped=str(why))
        return _run_child(case, folder, path)
    finally:
        mnt = folder / "mnt"
        if mnt.is_dir() and os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def _run_child(case: Case, folder: Path, path: Path) -> Result:
    before = _files(folder)
    peak_file = folder.parent / f"{folder.name}.peak"
    env = {**os.environ, **case.env, "HOSTILE_PEAK_FILE": str(peak_file)}
    env.pop("AIS_TORCH_DEBUG", None)
    if case.signal:
        env["HOSTILE_SLOW_WRITE"] = "0.2"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *case.argv(path)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_signals,
    )
    if case.signal:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.endswith(".partial") for p in _files(folder)):
                proc.send_signal(case.signal)
                break
            time.sleep(0.02)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line]
    peak_kb = int(peak_file.read_text() or 0) if peak_file.exists() else 0
    made = sorted(_files(folder) - before)
    left = [p for p in made if Path(p).name.startswith(".") or case.code != 0]
    return Result(case, proc.returncode, lines, peak_kb / 1024, seconds, left)


def _files(folder: Path) -> set[str]:
    """Every file and folder under ``folder``, relative (outputs of a valid case are expected;
    hidden ones — partial files, locks — never)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _default_signals() -> None:
    """The child starts with default signal handlers even under nohup or in the background."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def passed(r: Result, max_rss_mb: float) -> bool:
    return r.ok and r.peak_mb <= (r.case.max_rss_mb or max_rss_mb) and not r.left


def table(results: list[Result], max_rss_mb: float) -> str:
    rows = [("case", "exit", "peak RSS", "s", "left", "ok", "last line on stderr")]
    for r in results:
        ok = passed(r, max_rss_mb)
        shown = r.lines or r.stderr  # the one line, not the command's summary after it
        last = (shown[-1] if shown else "-").replace(str(Path(tempfile.gettempdir())), "$TMP")
        if r.skipped:
            last = f"skipped: {r.skipped}"
        rows.append(
            (
                r.case.name,
                str(r.code),
                f"{r.peak_mb:.0f} MB",
                f"{r.seconds:.1f}",
                ",".join(r.left) or "-",
                ("skip" if r.skipped else "ok") if ok else "FAIL",
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
    failed = [r for r in results if not passed(r, args.max_rss_mb)]
    print(f"\n{len(results) - len(failed)}/{len(results)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
