"""``copick inference ais-torch``: segment a copick project from copick's own command line.

Why: copick users find tools under ``copick inference`` (MemBrain-seg, DeepFindET, … plug in
there). copick discovers a plugin's click commands through the entry-point group
``copick.inference.commands`` (see ``copick/cli/ext.py``); ours is declared in
``pyproject.toml`` and runs the same path as ``ais-torch segment data=project.json``
(:func:`ais_torch.segmentation.batch.segment`). copick imports every plugin on each ``copick``
call, so this module imports only click; the work is imported when the command runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


@click.command(
    "ais-torch",
    short_help="Segment tomograms with Ais models (ais-torch).",
    context_settings={"show_default": True},
)
@click.option(
    "-c",
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    envvar="COPICK_CONFIG",
    show_envvar=True,
    help="copick project config (.json).",
)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Model file (.scnm, .scnmgroup, .onnx, .h5); repeat for several models. Each writes "
    "the segmentation named after its title (the project must define that object).",
)
@click.option(
    "-r", "--run-names", multiple=True, help="Runs to segment (default: all); repeatable."
)
@click.option(
    "--voxel-spacing",
    type=float,
    default=None,
    help="Tomogram spacing in Å (default: the one nearest the model's pixel size).",
)
@click.option("--tomo-type", default=None, help="Tomogram type (default: the only one).")
@click.option("--user-id", default="ais-torch", help="User id the segmentations are written as.")
@click.option("--session-id", default="0", help="Session id the segmentations are written as.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Also keep <run>__<title>.mrc here (and resume from it); default: a temporary folder.",
)
@click.option("--tta", type=int, default=1, help="Test-time augmentation: 1, 4 or 8 rotations.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--interactions",
    default=None,
    help="Named interaction set of ais-torch segment (e.g. antibody_platforms).",
)
@click.option("--overwrite/--no-overwrite", default=False, help="Replace existing results.")
def segment_command(
    config: str,
    models: tuple[str, ...],
    run_names: tuple[str, ...],
    voxel_spacing: float | None,
    tomo_type: str | None,
    user_id: str,
    session_id: str,
    out: str | None,
    tta: int,
    device: str,
    interactions: str | None,
    overwrite: bool,
) -> None:
    """Segment every selected run of a copick project with Ais models and write the results
    into it as segmentations (what ``ais-torch segment data=project.json`` does)."""
    from ais_torch.errors import AisError
    from ais_torch.formats.copick import CopickOptions
    from ais_torch.segmentation.batch import segment

    options = CopickOptions(
        runs=tuple(run_names) or None,
        voxel_spacing=voxel_spacing,
        tomo_type=tomo_type,
        user_id=user_id,
        session_id=session_id,
    )
    with tempfile.TemporaryDirectory(prefix="ais-torch-copick-") as scratch:
        try:
            report = segment(
                list(models),
                config,
                Path(out) if out else Path(scratch),
                tta=tta,
                device=device,
                interactions=interactions,
                overwrite=overwrite,
                copick=options,
            )
        except AisError as err:
            raise click.ClickException(str(err)) from None
    if report.failed:
        raise click.ClickException(
            f"{len(report.failed)} run(s) failed; first: {report.failed[0][1]}"
        )
    click.echo(f"copick: {len(report.copick)} segmentation(s) written into {config}")
