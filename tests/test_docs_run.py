"""Every documented command runs: the docs' shell commands, executed end to end on tiny data.

``test_docs.py`` checks statically that the documented commands compose; this file runs them.
Each page's commands run in the page's order in a fresh folder of their own ("the workspace"),
so a page's chain (the tutorial's train → demo → segment → pick → evaluate → view → mesh) is
tested as a chain: a command sees exactly what the commands before it wrote. The tutorial runs
first; its three trained models are the ``Membrane.scnm``/``Carbon.scnm``/``Antibody.scnm``
that other pages assume the reader has. Files a page assumes without making them (the reader's
own tomograms, label volumes, segmentations) are put into its workspace by ``SETUP`` from one
tiny demo data set (24×80×80 voxels at 10 Å).

How "as written" is adapted — the whole list; nothing else is changed:

* ``python`` and ``ais-torch`` → bash runs the command text, with ``python`` and ``ais-torch``
  shims first on ``PATH`` that run this interpreter (same environment as the tests;
  ``ais-torch`` is ``python -m ais_torch``, what the console script runs).
* the repository root (where the docs run from) → the page's workspace, with ``scripts/``
  linked in, so nothing is written into the repository (``viewer.md`` writes
  ``docs/img/viewer_demo.png``).
* ``ais-torch demo …`` → ``shape=24,80,80`` added: tiny tomograms.
* ``ais-torch train …`` → ``TRAIN`` added (1 epoch of 2 batches of 8 boxes, no
  progress bar); on the demo data (no ``data=``) also ``TRAIN_DEMO`` (one 24×128×128 tomogram to
  train on, one held out); with ``+experiment=`` and no ``arch=`` (UNet S) also
  ``NARROW_UNET`` (the same UNet S, 8× narrower, so every later segmentation is cheap).
* ``device=cuda`` → ``device=cpu``: every run is forced onto the CPU (``CUDA_VISIBLE_DEVICES=``).
* ``ais-torch view …`` and ``scripts/view.py`` → ``window=320x240``; ``frames=4`` with
  ``turntable=``; ``screenshot=window_<n>.png`` added when neither ``screenshot=`` nor
  ``turntable=`` is given (a window needs a display).
* Each rule applies to the ``python -m ais_torch.<verb>`` spelling as well; a ``--help`` line
  runs as written (it only prints the verb's keys, checked for its ``usage:`` line).
* ``[key=value]`` (usage notation for an optional argument) → ``key=value``.
* ``pip install -e examples/third_party_arch`` → skipped; ``plugins.md`` runs with the example's
  entry point and source on ``PYTHONPATH``, which is what the editable install provides.

A key the command already sets gets the new value in place; others are appended.

Commands that cannot run cheaply here are in ``SKIP`` with the reason; a documented command
that is neither run (its page has a ``SETUP``) nor skipped fails ``test_every_command_is_run_or
_skipped``, so a new command cannot go untested silently. Besides the exit code, each run is
checked for the files the docs say it writes (``_expected_outputs``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from docs_commands import ROOT, DocCommand, documented_commands

SKIP = {
    'pip install -e ".[dev]"': "installs the package; these tests already run in that install",
    "pytest": "runs the test suite this test is part of",
    "pip install -e examples/third_party_arch": (
        "would modify the environment; the plugin is made importable for plugins.md's train "
        "command instead (entry point + source on PYTHONPATH)"
    ),
    "ais-torch train +experiment=membrane trainer=ddp": (
        "trainer=ddp is accelerator=gpu, devices=-1: needs GPUs"
    ),
    "srun ais-torch train +experiment=membrane trainer=slurm trainer.num_nodes=2 "
    "trainer.devices=4": "needs a SLURM allocation of 2 nodes with 4 GPUs each",
    "torchrun --standalone --nproc-per-node 4 -m ais_torch.segment model=M.scnm data=tomos/ "
    "out=seg/": (
        "one rank per GPU of a 4-GPU node; the rank split it relies on runs with real "
        "processes in tests/inference/test_scheduling.py"
    ),
    "srun ais-torch segment model=M.scnm data=tomos/ out=seg/ device=cuda": (
        "needs a SLURM allocation with GPUs"
    ),
    **dict.fromkeys(
        (
            'pip install -e ".[copick]"',
            "ais-torch segment model=Membrane.scnm data=project.json out=segmented/",
            "ais-torch segment model=Membrane.scnm data=project.json out=segmented/ "
            "copick.runs=[TS_001,TS_002] copick.tomo_type=wbp",
            "ais-torch pick data=project.json feature=Antibody copick.object=antibody out=picks/",
            "ais-torch segment model=Membrane.scnm data=tomo.zarr out=segmented/",
            "ais-torch segment model=Membrane.scnm data=zarr_tomograms/ out=segmented/",
            "copick inference ais-torch -c project.json -m Membrane.scnm -m Carbon.scnm "
            "-r TS_001 --out segmented/",
        ),
        "copick.md: needs a copick project / OME-Zarr stores; tests/commands/test_copick_cli.py "
        "and tests/segmentation/test_segment_copick.py run these on ones built in code",
    ),
    **dict.fromkeys(
        (
            "ais-torch segment model=Membrane.scnm data=tomograms/ out=segmented/ format=zarr",
            "ais-torch segment model=Membrane.scnm data=tomo.mrc out=tomo_membrane.zarr",
            "ais-torch segment model=Membrane.scnm data=tomograms/ out=segmented/ format=zarr "
            "pyramid=3",
            "ais-torch view data=project.json copick.runs=[TS_001]",
            "ais-torch view data=project.json copick.runs=[TS_001] copick.user_id=ais-torch "
            "screenshot=TS_001.png",
            "ais-torch train data=copick data.project=project.json data.feature=membrane "
            "title=Membrane",
            "ais-torch train data=copick data.project=project.json data.feature=ribosome "
            "data.labels_from=picks  data.eval_runs=[TS_005] "
            "data.copick.runs=[TS_001,TS_002,TS_003] title=Ribosome",
        ),
        "copick.md: needs the reader's tomograms / a copick project; "
        "tests/segmentation/test_zarr_output.py, tests/viewer/test_copick_view.py and "
        "tests/training/test_train_copick.py run these on ones built in code",
    ),
}

TRAIN = {
    "trainer.max_epochs": "1",
    "trainer.limit_train_batches": "2",
    "data.batch_size": "8",
    "data.n_copies": "1",
    "trainer.enable_progress_bar": "false",
    "trainer.enable_model_summary": "false",
}
TRAIN_DEMO = {  # 128 px: the experiments' 32 px boxes fit at their binned pixel sizes (≤ 40 Å)
    "data.demo.shape": "[24,128,128]",
    "data.demo.n_train": "1",
    "data.demo.annotated_slices": "2",
}
NARROW_UNET = {  # a family's own keys are added with + (conf/arch/base.yaml)
    "+arch.encoder": "[[8],[16]]",
    "+arch.bottleneck": "[32]",
    "+arch.decoder": "[[16],[8]]",
}
DEMO_SHAPE = (24, 80, 80)
TIMEOUT_S = 300
FIRST_PAGE = "docs/tutorial.md"  # its models are the other pages' Membrane/Carbon/Antibody.scnm

_PROGRESS = re.compile(r"\d+%\||\x1b\[A|^\s+\[A")  # tqdm bars: not worth a line of the report
_PYTHON_LINE = re.compile(
    r"^(\s*)(?:ais-torch (\w+)|python -m ais_torch[. ](\w+)|python scripts/(view)\.py)\b(.*)$"
)
"""A documented command: ``ais-torch VERB``, ``python -m ais_torch[.| ]VERB`` or scripts/view.py."""


def _app(match: re.Match[str]) -> str:
    """The verb of a :data:`_PYTHON_LINE` match (``models`` is ``inspect``'s older name)."""
    app = match.group(2) or match.group(3) or match.group(4)
    return "inspect" if app == "models" else app


# --------------------------------------------------------------------------- adapting commands


def _set(line: str, key: str, value: str) -> str:
    """Give ``key`` the value ``value``: replace it where the line sets it, else append it."""
    pattern = re.compile(rf"(?<=\s){re.escape(key)}=\S*")
    word = shlex.quote(f"{key}={value}")
    return pattern.sub(lambda _: word, line) if pattern.search(line) else f"{line} {word}"


def _adapt_line(line: str, counter: list[int]) -> str:
    match = _PYTHON_LINE.match(line)
    if not match:
        return line
    app = _app(match)
    if re.search(r"\s(--help|-h)(\s|$)", line):
        return line
    line = re.sub(r"(?<=\s)\[(\w+=[^\[\]]*)\](?=\s|$)", r"\1", line)  # "[k=v]" → "k=v"
    if app == "demo":
        line = _set(line, "shape", ",".join(map(str, DEMO_SHAPE)))
    elif app == "train" and "--cfg" not in line:
        tiny = dict(TRAIN)
        if not re.search(r"\sdata=", line):
            tiny |= TRAIN_DEMO
        if "+experiment=" in line and not re.search(r"\sarch=", line):
            tiny |= NARROW_UNET
        for key, value in tiny.items():
            line = _set(line, key, value)
    elif app == "segment" and re.search(r"\sdevice=cuda", line):
        line = _set(line, "device", "cpu")
    elif app == "view":
        line = _set(line, "window", "320x240")
        if "turntable=" in line:
            line = _set(line, "frames", "4")
        elif "screenshot=" not in line:
            counter[0] += 1
            line = _set(line, "screenshot", f"window_{counter[0]}.png")
    return line


def adapt(command: str, counter: list[int]) -> str:
    """The documented command as it is run (see the table at the top of this file)."""
    return "\n".join(_adapt_line(line, counter) for line in command.split("\n"))


# --------------------------------------------------------------------------- page preconditions


@dataclass
class Context:
    """What the page setups draw from: tiny demo data and the workspaces of earlier pages."""

    root: Path
    demo: Path
    workspaces: dict[str, Path] = field(default_factory=dict)

    def tutorial_model(self, title: str) -> Path:
        path = self.workspaces[FIRST_PAGE] / "tutorial" / title.lower() / f"{title}.scnm"
        if not path.exists():
            raise FileNotFoundError(f"{path} (the tutorial's training command did not write it)")
        return path


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _segmentation(ctx: Context, tomo: str, feature: str, dst: Path) -> None:
    """A 0–255 segmentation like ``ais_torch.segment`` writes, from the demo's true labels."""
    from ais_torch.formats.mrc import read_volume, write_volume

    truth = read_volume(ctx.demo / "truth" / f"{tomo}__{feature}.mrc")
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = (np.asarray(truth.data) > 0).astype(np.uint8) * 255
    write_volume(dst, data, voxel_size_A=truth.voxel_size_A)


def _models(ctx: Context, ws: Path, *titles: str) -> None:
    for title in titles:
        _copy(ctx.tutorial_model(title), ws / f"{title}.scnm")


def _setup_readme(ctx: Context, ws: Path) -> dict[str, str]:
    from ais_torch.formats.mrc import read_volume
    from ais_torch.formats.scnt import write_scnt
    from ais_torch.training.boxes import extract_boxes

    _models(ctx, ws, "Membrane", "Carbon", "Antibody")
    _copy(ctx.demo / "tomo_00.mrc", ws / "tomograms" / "tomo_00.mrc")
    _copy(ctx.demo / "tomo_00.mrc", ws / "tomo1.mrc")
    _copy(ctx.demo / "annotations" / "tomo_00__membrane.mrc", ws / "tomo1_membrane_labels.mrc")
    boxes = extract_boxes(
        read_volume(ws / "tomo1.mrc"),
        read_volume(ws / "tomo1_membrane_labels.mrc"),
        feature="Membrane",
        box_size=64,
    )
    write_scnt(ws / "64x64x1_10.00Apx_Membrane.scnt", boxes)
    return {}


def _setup_interactions(ctx: Context, ws: Path) -> dict[str, str]:
    _models(ctx, ws, "Membrane", "Carbon", "Antibody")
    _copy(ctx.demo / "tomo_00.mrc", ws / "tomograms" / "tomo_00.mrc")
    return {}


def _setup_models(ctx: Context, ws: Path) -> dict[str, str]:
    _models(ctx, ws, "Membrane")
    return {}


def _setup_picking(ctx: Context, ws: Path) -> dict[str, str]:
    for tomo in ("tomo_00", "tomo_01"):
        for feature in ("antibody", "membrane", "carbon"):  # the others for context=
            title = feature.capitalize()
            _segmentation(ctx, tomo, feature, ws / "segmented" / f"{tomo}__{title}.mrc")
    _copy(ctx.demo / "tomo_01__antibody_truth.tsv", ws / "tomo_01_truth.tsv")
    _copy(ctx.demo / "tomo_00__antibody_truth.star", ws / "P.star")
    _copy(ctx.demo / "tomo_00__antibody_truth.tsv", ws / "T.tsv")
    _segmentation(ctx, "tomo_00", "membrane", ws / "tomo__Membrane.mrc")
    _copy(ctx.demo / "truth" / "tomo_00__membrane.mrc", ws / "membrane_label.mrc")
    return {}


def _setup_plugins(ctx: Context, ws: Path) -> dict[str, str]:
    import importlib.metadata as metadata

    import tomllib

    # a real install has a distribution; find_spec would also see a module that another test
    # imported from the example folder (tests/archs/test_third_party.py) and left in sys.modules
    try:
        metadata.distribution("tiny_arch")
        return {}  # installed for real
    except metadata.PackageNotFoundError:
        pass
    example = ROOT / "examples" / "third_party_arch"
    project = tomllib.loads((example / "pyproject.toml").read_text())["project"]
    info = ctx.root / "plugin_site" / f"{project['name']}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    points = project["entry-points"]["ais_torch.archs"]
    lines = "\n".join(f"{k} = {v}" for k, v in points.items())
    (info / "entry_points.txt").write_text(f"[ais_torch.archs]\n{lines}\n")
    path = os.pathsep.join([str(info.parent), str(example), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path.rstrip(os.pathsep)}


def _setup_segmentation(ctx: Context, ws: Path) -> dict[str, str]:
    from ais_torch.formats.scnmgroup import write_scnmgroup

    _models(ctx, ws, "Membrane", "Carbon", "Antibody")
    for dst, src in (
        ("tomograms/tomo_00.mrc", "tomo_00.mrc"),
        ("tomos/tomo_00.mrc", "tomo_00.mrc"),
        ("tomo.mrc", "tomo_00.mrc"),
        ("list/tomo_01.mrc", "tomo_01.mrc"),
    ):
        _copy(ctx.demo / src, ws / dst)
    (ws / "list.txt").write_text("# the tomograms to segment\nlist/tomo_01.mrc\n")
    write_scnmgroup(
        ws / "group.scnmgroup",
        [ws / "Membrane.scnm", ws / "Antibody.scnm"],
        [{"parent_title": "Antibody", "partner_title": "Membrane", "type": 1, "radius": 10.0,
          "threshold": 0.5}],
    )  # fmt: skip
    onnx = ctx.workspaces["docs/models.md"] / "Membrane.onnx"  # models.md's export wrote it
    if not onnx.exists():
        raise FileNotFoundError(f"{onnx} (models.md's export command did not write it)")
    _copy(onnx, ws / "Membrane.onnx")
    return {}


def _setup_viewer(ctx: Context, ws: Path) -> dict[str, str]:
    for folder in (ws, ws / "segmented"):
        _copy(ctx.demo / "tomo_01.mrc", folder / "TS_01.mrc")
        _segmentation(ctx, "tomo_01", "membrane", folder / "TS_01__Membrane.mrc")
        _segmentation(ctx, "tomo_01", "antibody", folder / "TS_01__Ribosome.mrc")
        _copy(ctx.demo / "tomo_01__antibody_truth.star", folder / "TS_01__Ribosome_coords.star")
    return {}


def _nothing(ctx: Context, ws: Path) -> dict[str, str]:
    return {}


# page → puts the files the page assumes into its workspace; returns extra environment variables
SETUP: dict[str, Callable[[Context, Path], dict[str, str]]] = {
    "docs/tutorial.md": _nothing,
    "README.md": _setup_readme,
    "docs/interactions.md": _setup_interactions,
    "docs/models.md": _setup_models,
    "docs/picking.md": _setup_picking,
    "docs/plugins.md": _setup_plugins,
    "docs/segmentation.md": _setup_segmentation,
    "docs/training.md": _nothing,
    "docs/viewer.md": _setup_viewer,
}


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    command: DocCommand
    ran_as: str = ""
    cwd: Path | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = re.split(r"[\r\n]+", self.stderr)
        tail = [s for s in lines if s.strip() and not _PROGRESS.search(s)][-15:]
        out = [s for s in self.stdout.splitlines() if s.strip()][-5:]
        return "\n".join(
            [
                f"{self.command.page}: `{self.command.text}`",
                f"ran as: {self.ran_as}",
                f"in {self.cwd}: exit code {self.returncode} after {self.seconds:.1f} s",
                *self.problems,
                "last lines of stderr:",
                *("  " + line for line in tail),
                *(["last lines of stdout:"] if out else []),
                *("  " + line for line in out),
            ]
        )


def _words(line: str) -> dict[str, str]:
    try:
        words = shlex.split(line)
    except ValueError:
        return {}
    return dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))


def _expected_outputs(ran_as: str, cwd: Path, output: str) -> list[str]:
    """What the docs promise each command writes; returns what is missing."""
    missing = []
    for line in ran_as.split("\n"):
        match = _PYTHON_LINE.match(line)
        if not match or "--cfg" in line:
            continue
        if re.search(r"\s(--help|-h)(\s|$)", line):
            if "usage: ais-torch" not in output:
                missing.append(f"{line.split()[0]} --help printed no 'usage: ais-torch' line")
            continue
        app, args = _app(match), _words(line)
        shell_made = re.search(r'screenshot="?([\w./-]*/)\$', line)  # a loop's "dir/$(...).png"
        if shell_made:
            args = {"screenshot": f"{shell_made.group(1)}*.png"}

        def need(pattern: str, where: Path = cwd, what: str = "", app: str = app) -> None:
            if not any(p.is_file() and p.stat().st_size > 0 for p in where.glob(pattern)):
                missing.append(f"{app} wrote no {what or pattern} in {where}")

        if app == "train":
            models = re.findall(r"^model:\s+(\S+\.scnm)$", output, re.M)
            if not models or not Path(models[-1]).is_file():
                missing.append("train did not print 'model: <file>.scnm' for a file that exists")
        elif app == "demo":
            need("tomo_00.mrc", cwd / args["out"])
        elif app == "segment":
            written = re.findall(r"(\d+) written", output)
            if not written or int(written[-1]) == 0:
                missing.append("segment wrote no segmentation ('N written' with N > 0)")
        elif app == "pick":
            need(f"*__{args['feature']}_coords.star", cwd / args["out"])
        elif app == "mesh":
            data = Path(args["data"])
            where = cwd / (args.get("out") or (data.parent if "*" in data.name else data))
            need("*__*.obj", where, "<tomo>__<feature>.obj")
        elif app == "export":
            need(args["out"])
        elif app == "evaluate" and "json" in args:
            need(args["json"])
        elif app == "view":
            need(args.get("screenshot") or args["turntable"])
        elif app == "inspect" and "title" not in output.lower():
            missing.append("inspect info printed no title")
    return missing


def _run_page(
    page: str, commands: list[DocCommand], ctx: Context, env: dict[str, str]
) -> list[Run]:
    ws = ctx.root / page.replace("/", "_").removesuffix(".md")
    ws.mkdir()
    (ws / "scripts").symlink_to(ROOT / "scripts")
    ctx.workspaces[page] = ws
    runs = [Run(c) for c in commands]
    try:
        env = {**env, **SETUP[page](ctx, ws)}
    except Exception as err:  # a missing precondition fails every command of the page
        for run in runs:
            run.problems.append(f"the page's setup failed: {type(err).__name__}: {err}")
        return runs
    counter = [0]
    for run in runs:
        run.ran_as, run.cwd = adapt(run.command.text, counter), ws
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", run.ran_as],
                cwd=ws,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as err:
            run.problems.append(f"timed out after {TIMEOUT_S} s")
            run.stderr = (err.stderr or b"").decode(errors="replace")
            continue
        finally:
            run.seconds = time.perf_counter() - start
        run.returncode, run.stdout, run.stderr = proc.returncode, proc.stdout, proc.stderr
        if proc.returncode == 0:
            run.problems += _expected_outputs(run.ran_as, ws, proc.stdout + proc.stderr)
    return runs


def _runnable() -> dict[str, list[DocCommand]]:
    pages: dict[str, list[DocCommand]] = {}
    for command in documented_commands():
        if command.text not in SKIP and command.page in SETUP:
            pages.setdefault(command.page, []).append(command)
    return dict(sorted(pages.items(), key=lambda item: item[0] != FIRST_PAGE))


RUNNABLE = [c for commands in _runnable().values() for c in commands]


@pytest.fixture(scope="module")
def doc_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[DocCommand, Run]:
    from ais_torch.training.synthetic import write_demo

    root = tmp_path_factory.mktemp("docs_run")
    demo = root / "demo_data"
    write_demo(demo, n_tomograms=2, shape=DEMO_SHAPE, annotated_slices=2)
    shim = root / "bin"
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    (shim / "ais-torch").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ais_torch "$@"\n')
    (shim / "ais-torch").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env |= {
        "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
        "CUDA_VISIBLE_DEVICES": "",
        "AIS_TORCH_CACHE": str(root / "cache"),
    }
    ctx = Context(root, demo)
    runs: dict[DocCommand, Run] = {}
    for page, commands in _runnable().items():
        runs |= {r.command: r for r in _run_page(page, commands, ctx, env)}
    for run in runs.values():  # shown with pytest -s: where the time goes
        print(f"{run.seconds:6.1f} s  {run.command.page}: {run.command.text.splitlines()[0][:90]}")
    return runs


# --------------------------------------------------------------------------- tests


def test_every_command_is_run_or_skipped() -> None:
    documented = documented_commands()
    orphans = [
        f"{c.page}: {c.text}" for c in documented if c.text not in SKIP and c.page not in SETUP
    ]
    assert not orphans, (
        "documented commands that are neither run nor skipped; give their page a SETUP entry "
        "in tests/test_docs_run.py (or, if they cannot run cheaply, a SKIP entry with the "
        "reason):\n" + "\n".join(orphans)
    )
    stale = sorted(set(SKIP) - {c.text for c in documented})
    assert not stale, f"SKIP entries no documented command matches any more: {stale}"
    assert {"docs/tutorial.md", "README.md", "docs/viewer.md"} <= {c.page for c in RUNNABLE}


def test_adaptations_are_the_documented_ones() -> None:
    counter = [0]
    view = "ais-torch view data=segmented/ turntable=TS_01.gif frames=72"
    assert adapt(view, counter) == (
        "ais-torch view data=segmented/ turntable=TS_01.gif frames=4 window=320x240"
    )
    old = adapt("python -m ais_torch.view data=segmented/ turntable=T.gif", counter)
    assert old.endswith("turntable=T.gif window=320x240 frames=4")
    window = adapt("python scripts/view.py data=segmented/", counter)
    assert window.endswith("window=320x240 screenshot=window_1.png")
    evaluate = adapt("python -m ais_torch.evaluate picks=P.star truth=T.tsv [match_px=5]", counter)
    assert evaluate == "python -m ais_torch.evaluate picks=P.star truth=T.tsv match_px=5"
    train = adapt("ais-torch train data=scnt title=M data.scnt=[a.scnt]", counter)
    assert "data.scnt=[a.scnt]" in train and "data.demo.shape" not in train
    assert "arch.encoder" not in train and "trainer.max_epochs=1" in train
    assert adapt("for t in a; do\ndone", counter) == "for t in a; do\ndone"
    assert adapt("ais-torch train +experiment=membrane --help", counter).endswith("--help")


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", RUNNABLE, ids=[f"{c.page}: {c.text.splitlines()[0][:70]}" for c in RUNNABLE]
)
def test_documented_command_runs(command: DocCommand, doc_runs: dict[DocCommand, Run]) -> None:
    run = doc_runs[command]
    assert run.returncode == 0 and not run.problems, run.report()
