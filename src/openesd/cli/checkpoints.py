"""`openesd checkpoints`: upload (parallel parts, resumable), import by URL, list, rename, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openesd.cli import _config
from openesd.cli._output import JsonOption, emit_json, handles_errors, table
from openesd.cli._progress import byte_bar
from openesd.cli import _session

app = typer.Typer(
    help="Manage model files: checkpoints, LoRA, VAE, ControlNet, embeddings, upscalers.", no_args_is_help=True
)

TypeOption = Annotated[
    str,
    typer.Option(
        "--type",
        "-t",
        help="Stable-diffusion, Lora, VAE, ControlNet, embeddings, hypernetworks, ESRGAN, rembg, "
        "ControlNet-annotator, ADetailer or text_encoder (FLUX.1/SD 3 CLIP-L, CLIP-G, T5-XXL).",
    ),
]
COLUMNS = [("id", "id"), ("type", "type"), ("status", "status"), ("name", "name"), ("created", "created")]


@app.command(help="Upload a model file in parallel parts, with a progress bar; --resume continues an interrupted one.")
@handles_errors
def upload(
    file: Annotated[Path, typer.Argument(help="The model file.", exists=True, dir_okay=False)],
    checkpoint_type: TypeOption,
    resume: Annotated[bool, typer.Option(help="Continue the last interrupted upload of this file.")] = False,
    part_size_mb: Annotated[int | None, typer.Option(help="Part size in MiB [default: size/100, at least 8].")] = None,
    parallel: Annotated[int, typer.Option(help="Parts sent at once.")] = 4,
    message: Annotated[str, typer.Option(help="A note stored with the checkpoint.")] = "",
    as_json: JsonOption = False,
) -> None:
    from openesd.client import ESDError

    state = _config.upload_state_path(file)
    if not resume:
        state.unlink(missing_ok=True)
    elif not state.exists():
        raise typer.BadParameter(f"no interrupted upload of {file} to resume", param_hint="--resume")
    checkpoints = _session.client().checkpoints
    try:
        with byte_bar(file.name) as progress:
            result = checkpoints.upload(
                file,
                checkpoint_type,
                part_size=part_size_mb * (1 << 20) if part_size_mb else None,
                parallel=parallel,
                progress=progress,
                resume_state=state,
                message=message,
            )
    except (ESDError, KeyboardInterrupt) as exc:
        if state.exists():
            typer.echo(
                f"interrupted; `openesd checkpoints upload {file} --type {checkpoint_type} --resume` "
                f"sends only the missing parts",
                err=True,
            )
        if isinstance(exc, KeyboardInterrupt):
            raise typer.Exit(130) from None
        raise
    if as_json:
        emit_json(result.checkpoint)
        return
    typer.echo(
        f"uploaded {file.name} as {result.checkpoint['id']} ({result.parts_sent} of {result.parts} parts "
        f"sent now), status {result.checkpoint['status']}"
    )


@app.command("import", help="Have the server download model files from URLs.")
@handles_errors
def import_(
    urls: Annotated[list[str], typer.Argument(help="http(s) URLs of model files.")],
    checkpoint_type: TypeOption,
    message: Annotated[str, typer.Option(help="A note stored with the checkpoint.")] = "",
) -> None:
    typer.echo(_session.client().checkpoints.import_urls(checkpoint_type, urls, message))


@app.command("list", help="List checkpoints, newest first.")
@handles_errors
def list_checkpoints(
    checkpoint_type: Annotated[list[str] | None, typer.Option("--type", "-t", help="Only these types.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses (Initial, Active, Disabled).")] = None,
    as_json: JsonOption = False,
) -> None:
    table(_session.client().checkpoints.list(types=checkpoint_type, status=status), COLUMNS, as_json=as_json)


@app.command(help="Rename an Active checkpoint's file (the name is used as is).")
@handles_errors
def rename(
    checkpoint_id: Annotated[str, typer.Argument(help="Checkpoint id.")],
    name: Annotated[str, typer.Argument(help="New file name.")],
) -> None:
    typer.echo(_session.client().checkpoints.rename(checkpoint_id, name))


@app.command(help="Remove checkpoints and their files.")
@handles_errors
def rm(checkpoint_ids: Annotated[list[str], typer.Argument(help="Checkpoint ids.")]) -> None:
    _session.client().checkpoints.delete(checkpoint_ids)
    typer.echo(f"removed {', '.join(checkpoint_ids)}")
